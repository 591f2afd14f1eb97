#!/usr/bin/env python3
"""The default model pack (config/cfg_pack.h): a daemon with no model
configured serves the pack's models (here a pack made of stories260K from
../shared, with a relative path and mean pooling): /v1/models lists it,
completions and embeddings answer; a configured model wins over the pack;
a pack that sets other keys stops the start with a clear error. Skips
loudly when ../shared is absent."""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.abspath(os.path.join(HERE, "..", "..", "..", "shared", "models",
                                     "stories260K.gguf"))


class ModelPack(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(MODEL):
            print("\n*** SKIPPED: ../shared/models/stories260K.gguf is absent ***",
                  file=sys.stderr)
            raise unittest.SkipTest("../shared absent")
        cls.dir = tempfile.mkdtemp(prefix="alignd_pack_")
        os.symlink(MODEL, os.path.join(cls.dir, "stories.gguf"))
        cls.pack = os.path.join(cls.dir, "pack.ini")
        with open(cls.pack, "w") as f:
            f.write("; a test pack\n[model.stories]\npath = stories.gguf\nembed_pooling = mean\n")

    def test_pack_served(self):
        with H.Daemon(f"--server.model_pack={self.pack}") as d:
            s, _, b = d.json("GET", "/v1/models")
            self.assertEqual(s, 200, b)
            self.assertEqual([m["id"] for m in b["data"]], ["stories"], b)
            s, _, b = d.json("POST", "/v1/completions", {
                "model": "stories", "prompt": "Once upon a time", "max_tokens": 8,
                "temperature": 0}, timeout=60)
            self.assertEqual(s, 200, b)
            self.assertTrue(b["choices"][0]["text"], b)
            s, _, b = d.json("POST", "/v1/embeddings", {
                "model": "stories", "input": ["Tom found a ball.", "Lily was sad."]}, timeout=60)
            self.assertEqual(s, 200, b)
            self.assertEqual(len(b["data"]), 2)
            self.assertIn(os.path.join(self.dir, "stories.gguf"), d.log())

    def test_configured_model_wins(self):
        with H.Daemon(f"--server.model_pack={self.pack}", "--model", f"mine={MODEL}") as d:
            s, _, b = d.json("GET", "/v1/models")
            self.assertEqual([m["id"] for m in b["data"]], ["mine"], b)

    def test_bad_pack(self):
        bad = os.path.join(self.dir, "bad.ini")
        with open(bad, "w") as f:
            f.write("[server]\nport = 1\n[model.x]\npath = x.gguf\n")
        p = subprocess.run([H.BINARY, f"--server.model_pack={bad}"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("sets server.port", p.stderr)
        p = subprocess.run([H.BINARY, f"--server.model_pack={self.dir}/nope.ini"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("nope.ini", p.stderr)


if __name__ == "__main__":
    H.main(globals())

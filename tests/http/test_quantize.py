#!/usr/bin/env python3
"""`alignd quantize` and serving what it writes: the shipped story LM in
Q8_0 and Q4_0 is 3.7x / 6.9x smaller, keeps its held-out perplexity
(`alignd perplexity`: Q8_0 within 0.5% of F32, Q4_0 within 5%), and the
daemon serves it with the int8 kernels (completions answer; the log names
the smaller weights); bad usage and bad files fail with clear messages.
Needs nothing from ../shared."""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
LM = os.path.join(ROOT, "models", "story-lm.gguf")
GEN = os.path.join(ROOT, "models", "gen", "gen_stories.py")


def alignd(*args):
    return subprocess.run([H.BINARY, *args], capture_output=True, text=True, timeout=600)


class Quantize(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="alignd_quantize_")
        cls.files = {}
        for t in ("q8_0", "q4_0"):
            out = os.path.join(cls.tmp, f"lm-{t}.gguf")
            p = alignd("quantize", LM, out, t)
            if p.returncode != 0:
                raise AssertionError(f"quantize {t} failed: {p.stderr}")
            cls.files[t] = out
        cls.held = os.path.join(cls.tmp, "heldout.txt")
        subprocess.run([sys.executable, GEN, "--bytes", "30000", "--seed", "9", "--out",
                        cls.held], check=True)

    def ppl(self, path):
        p = alignd("perplexity", "-m", path, "-f", self.held, "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout.strip().splitlines()[-1])["ppl"]

    def test_sizes_and_accuracy(self):
        base = os.path.getsize(LM)
        self.assertLess(os.path.getsize(self.files["q8_0"]) * 3.5, base)
        self.assertLess(os.path.getsize(self.files["q4_0"]) * 6.5, base)
        f32, q8, q4 = self.ppl(LM), self.ppl(self.files["q8_0"]), self.ppl(self.files["q4_0"])
        print(f"\nperplexity F32 {f32:.4f}, Q8_0 {q8:.4f}, Q4_0 {q4:.4f}", file=sys.stderr)
        self.assertLess(abs(q8 - f32) / f32, 0.005)
        self.assertLess(abs(q4 - f32) / f32, 0.05)

    def test_served_quantized(self):
        with H.Daemon("--model", f"q8={self.files['q8_0']}", "--model",
                      f"q8f={self.files['q8_0']}", "--model.q8f.weights=f32") as d:
            for name in ("q8", "q8f"):
                s, _, b = d.json("POST", "/v1/completions", {
                    "model": name, "prompt": "Once upon a time", "max_tokens": 24,
                    "temperature": 0}, timeout=60)
                self.assertEqual(s, 200, b)
                self.assertTrue(b["choices"][0]["text"].strip(), b)
            log = d.log()[:4000]
            # kept quantized: about 2 MiB of weights (packed, float scales); converted: 7.5 MiB
            def mib(name):
                line = [ln for ln in log.splitlines() if f"loaded '{name}' from" in ln][0]
                return float(re.search(r"([\d.]+) MiB weights", line).group(1))
            self.assertLess(mib("q8"), 2.3)
            self.assertAlmostEqual(mib("q8f"), 7.5, delta=0.05)

    def test_errors(self):
        p = alignd("quantize", LM, os.path.join(self.tmp, "x.gguf"), "q5_0")
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage: alignd quantize", p.stderr)
        p = alignd("quantize", os.path.join(self.tmp, "nope.gguf"),
                   os.path.join(self.tmp, "x.gguf"), "q8_0")
        self.assertEqual(p.returncode, 1)
        self.assertIn("nope.gguf", p.stderr)
        p = alignd("quantize", self.held, os.path.join(self.tmp, "x.gguf"), "q8_0")
        self.assertEqual(p.returncode, 1)
        self.assertIn("heldout.txt", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "x.gguf")))


if __name__ == "__main__":
    H.main(globals())

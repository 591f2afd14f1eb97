#!/usr/bin/env python3
"""`alignd pretrain` end to end: a ~1M-parameter llama trained for a few
hundred steps on a generated story corpus (tests/tools/gen_corpus.py) beats
the unigram baseline clearly on held-out text; the GGUF it writes serves
completions through the daemon and runs in `alignd generate`; a run resumed
from its checkpoint ends with the same model as an uninterrupted one; bad
usage and a bad corpus fail with clear messages. Needs nothing from
../shared."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "..", "tools", "gen_corpus.py")
SMALL = ["--vocab", "400", "--embd", "128", "--layers", "4", "--heads", "4", "--ctx", "128",
         "--batch", "8", "--seq", "64", "--log-every", "50"]


def pretrain(*args, check=True):
    p = subprocess.run([H.BINARY, "pretrain", *args], capture_output=True, text=True,
                       timeout=900)
    if check and p.returncode != 0:
        raise AssertionError(f"alignd pretrain failed ({p.returncode}): {p.stderr}")
    return p


class Pretrain(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="alignd_pretrain_")
        cls.corpus = os.path.join(cls.tmp, "corpus.txt")
        with open(cls.corpus, "w") as f:
            subprocess.run([sys.executable, GEN, "--bytes", "150000", "--seed", "3"], stdout=f,
                           check=True)
        cls.model = os.path.join(cls.tmp, "story.gguf")
        p = pretrain("--corpus", cls.corpus, "-o", cls.model, "--steps", "300", "--json", *SMALL)
        cls.stderr = p.stderr
        cls.result = json.loads(p.stdout.strip().splitlines()[-1])

    def test_learns_below_unigram(self):
        r = self.result
        self.assertEqual(r["steps"], 300)
        self.assertGreater(r["params"], 500_000)
        self.assertLess(r["params"], 2_000_000)
        # the stories have structure a unigram model cannot see
        self.assertLess(r["eval_loss"], 0.5 * r["unigram_loss"], self.stderr)

    def test_progress_lines(self):
        lines = [ln for ln in self.stderr.splitlines() if " | loss " in ln]
        self.assertGreaterEqual(len(lines), 6)
        for word in ("step 300/300", "tok/s", "ETA", "held-out", "unigram"):
            self.assertIn(word, self.stderr)

    def test_generate_cli(self):
        p = subprocess.run([H.BINARY, "generate", "-m", self.model, "-p", "Once upon a time",
                            "-n", "24"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertGreater(len(p.stdout.strip()), 20)

    def test_serves_completions(self):
        with H.Daemon("--model", f"story={self.model}") as d:
            status, _, body = d.json("POST", "/v1/completions", {
                "model": "story", "prompt": "Once upon a time, there was a little",
                "max_tokens": 24, "temperature": 0})
            self.assertEqual(status, 200, body)
            text = body["choices"][0]["text"]
            self.assertGreater(len(text.strip()), 10)
            # a model that learnt the corpus names an animal from it next
            self.assertTrue(any(a in text for a in
                                ("cat", "dog", "bird", "fish", "frog", "duck", "bear",
                                 "rabbit")), text)

    def test_resume_is_exact(self):
        args = ["--corpus", self.corpus, "--seed", "9", *SMALL, "--steps", "40",
                "--embd", "64", "--layers", "2"]
        whole = os.path.join(self.tmp, "whole.gguf")
        pretrain(*args, "-o", whole)
        ckpt = os.path.join(self.tmp, "run.ckpt")
        half = os.path.join(self.tmp, "half.gguf")
        # the first 20 steps of the same 40-step schedule, then resume
        pretrain(*args, "-o", half, "--checkpoint", ckpt, "--checkpoint-every", "20",
                 "--stop-after", "20")
        resumed = os.path.join(self.tmp, "resumed.gguf")
        p = pretrain(*args, "-o", resumed, "--checkpoint", ckpt, "--resume")
        self.assertIn("resuming from", p.stderr)
        with open(whole, "rb") as a, open(resumed, "rb") as b:
            self.assertTrue(a.read() == b.read(), "resumed run differs from the whole run")
        # another corpus or shape is refused
        p = pretrain(*args[:-2], "--layers", "3", "-o", resumed, "--checkpoint", ckpt,
                     "--resume", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("another corpus or settings", p.stderr)

    def test_errors(self):
        p = pretrain("--corpus", os.path.join(self.tmp, "missing.txt"), "-o",
                     os.path.join(self.tmp, "x.gguf"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("missing.txt", p.stderr)
        p = pretrain("--corpus", self.corpus, "-o", "x.gguf", "--layers", "0", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--layers", p.stderr)
        p = pretrain("--corpus", self.corpus, check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage", p.stderr)
        empty = os.path.join(self.tmp, "empty.txt")
        open(empty, "w").close()
        p = pretrain("--corpus", empty, "-o", os.path.join(self.tmp, "e.gguf"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("vocabulary", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "e.gguf")))
        p = pretrain("--corpus", self.corpus, "-o", "x.gguf", "--embd", "30", "--heads", "4",
                     check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("heads", p.stderr)


if __name__ == "__main__":
    H.main(globals())

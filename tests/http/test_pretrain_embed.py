#!/usr/bin/env python3
"""`alignd pretrain embed` end to end: a short contrastive run from the
shipped story LM (models/story-lm.gguf) on generated paraphrase items
improves held-out retrieval over the LM's own mean-pooled states (both
measured by the command and reported in its JSON); the GGUF it writes is
served by the daemon with mean pooling, and /v1/embeddings gives the
retrieval the command measured; bad usage and bad data fail with clear
messages (exit 2 and 1). Needs nothing from ../shared."""
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
LM = os.path.join(ROOT, "models", "story-lm.gguf")
GEN = os.path.join(ROOT, "models", "gen", "gen_paraphrases.py")


def run(*args):
    return subprocess.run([H.BINARY, "pretrain", "embed", *args], capture_output=True,
                          text=True, timeout=900)


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) *
                                                        sum(y * y for y in b))


class PretrainEmbed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(LM):
            raise AssertionError(f"{LM} is missing: the default pack is part of the checkout")
        cls.tmp = tempfile.mkdtemp(prefix="alignd_pretrain_embed_")
        cls.test = os.path.join(cls.tmp, "test.jsonl")
        cls.train = os.path.join(cls.tmp, "train.jsonl")
        subprocess.run([sys.executable, GEN, "--n", "100", "--seed", "5", "--out", cls.test],
                       check=True)
        subprocess.run([sys.executable, GEN, "--n", "1500", "--seed", "6", "--exclude",
                        cls.test, "--out", cls.train], check=True)
        cls.out = os.path.join(cls.tmp, "embed.gguf")
        p = run("-m", LM, "--data", cls.train, "--eval", cls.test, "-o", cls.out, "--steps",
                "30", "--batch", "16", "--negatives", "2", "--lr", "5e-4", "--log-every", "10",
                "--json")
        if p.returncode != 0:
            raise AssertionError(f"pretrain embed failed ({p.returncode}): {p.stderr}")
        cls.stderr = p.stderr
        cls.result = json.loads(p.stdout.strip().splitlines()[-1])

    def test_training_improves_retrieval(self):
        r = self.result
        print(f"\npretrain embed: held-out top-1 {r['top1_before']:.3f} -> {r['top1']:.3f}, "
              f"MRR {r['mrr_before']:.3f} -> {r['mrr']:.3f}", file=sys.stderr)
        self.assertEqual(r["steps"], 30)
        self.assertEqual(r["eval_items"], 100)
        self.assertEqual(r["eval_negatives"], 4)
        self.assertGreater(r["top1"], r["top1_before"] + 0.1)
        self.assertGreater(r["mrr"], r["mrr_before"])
        self.assertIn("before training (the LM's mean-pooled hidden states)", self.stderr)
        self.assertIn("step 30/30", self.stderr)

    def test_served_embeddings_match(self):
        with open(self.test) as f:
            items = [json.loads(line) for line in f if line.strip()]
        with H.Daemon("--model", f"emb={self.out}") as d:
            correct = 0
            for k in range(0, len(items), 20):
                chunk = items[k:k + 20]
                texts = [t for it in chunk for t in [it["query"], it["positive"],
                                                     *it["negatives"]]]
                s, _, b = d.json("POST", "/v1/embeddings", {"model": "emb", "input": texts},
                                 timeout=120)
                self.assertEqual(s, 200, b)
                vecs = [e["embedding"] for e in b["data"]]
                for i in range(len(chunk)):
                    q, p, negs = vecs[6 * i], vecs[6 * i + 1], vecs[6 * i + 2:6 * i + 6]
                    correct += all(cosine(q, p) > cosine(q, v) for v in negs)
                    self.assertAlmostEqual(math.sqrt(sum(x * x for x in q)), 1.0, places=4)
        # the server's pooling is the trainer's: the same retrieval figure
        self.assertAlmostEqual(correct / len(items), self.result["top1"], delta=0.011)

    def test_errors(self):
        p = run("-m", LM, "--data", self.train)
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage: alignd pretrain embed", p.stderr)
        p = run("-m", LM, "--data", self.train, "-o", self.out, "--batch", "1")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--batch", p.stderr)
        bad = os.path.join(self.tmp, "bad.jsonl")
        with open(bad, "w") as f:
            f.write('{"query": "a", "positive": "b", "negatives": ["c", "d"]}\n{"query": 3}\n')
        p = run("-m", LM, "--data", bad, "-o", os.path.join(self.tmp, "x.gguf"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("bad.jsonl:2", p.stderr)
        with open(bad, "w") as f:
            f.write('{"query": "a", "positive": "b", "negatives": ["c", "d"]}\nnot json\n')
        p = run("-m", LM, "--data", bad, "-o", os.path.join(self.tmp, "x.gguf"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("bad.jsonl:2", p.stderr)
        p = run("-m", os.path.join(self.tmp, "nope.gguf"), "--data", self.train, "-o",
                os.path.join(self.tmp, "x.gguf"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("nope.gguf", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "x.gguf")))


if __name__ == "__main__":
    H.main(globals())

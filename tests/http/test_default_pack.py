#!/usr/bin/env python3
"""The default model pack as shipped in models/ (see models/README.md),
served the way `make run` serves it: the daemon started in the checkout
with no model configured (server.model_pack = auto) serves the three
models, and each does its job well on data it never saw, generated afresh
by models/gen/:

- stories (the LM): perplexity on held-out stories below PPL_BOUND with
  `alignd perplexity` (the unigram model of the corpus is near 300), and
  a greedy story through /v1/completions in the corpus' words;
- stories-embed: paraphrase retrieval through /v1/embeddings (the
  positive must beat 4 hard negatives; chance 0.2) at least TOP1_BOUND;
- shapes-clip: zero-shot top-1 among the 128 prompts through /v1/classify
  on images of the colour-shape combinations held out of training, at
  least CLIP_BOUND, and shape and colour each right more often still.

The bounds sit below the figures measured when the pack was made (the
model cards), with room for another machine's rounding. Needs nothing
from ../shared."""
import base64
import hashlib
import json
import math
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
MODELS = os.path.join(ROOT, "models")
GEN = os.path.join(MODELS, "gen")

PPL_BOUND = 2.2
TOP1_BOUND = 0.65
CLIP_BOUND = 0.8
N_PARA = 300      # retrieval items (the pack's own test set: seed 1)
N_SHAPES = 1600   # images generated with a seed training never used: ~200 unseen pairs


def gen(script, *args):
    subprocess.run([sys.executable, os.path.join(GEN, script), *args], check=True,
                   capture_output=True, timeout=600)


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) *
                                                        sum(y * y for y in b))


class DefaultPack(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="alignd_pack_")
        # served as `make run` does: from the checkout, nothing configured
        cls.d = H.Daemon("--server.model_pack=auto", "--server.max_body_size=16M",
                         cwd=ROOT).__enter__()

    @classmethod
    def tearDownClass(cls):
        if hasattr(cls, "d"):
            cls.d.__exit__(None, None, None)

    def test_models_listed(self):
        s, _, b = self.d.json("GET", "/v1/models")
        self.assertEqual(s, 200, b)
        self.assertEqual(sorted(m["id"] for m in b["data"]),
                         ["shapes-clip", "stories", "stories-embed"], b)
        self.assertIn("serving the default model pack models/pack.ini", self.d.log()[:4000])

    def test_checksums_and_size(self):
        # every file of the pack is listed in SHA256SUMS, matches it, and the
        # whole pack stays small (the 25 MB)
        listed = {}
        with open(os.path.join(MODELS, "SHA256SUMS")) as f:
            for line in f:
                digest, name = line.split()
                listed[name] = digest
        found = set()
        for top in ("story-lm.gguf", "story-embed.gguf", "shapes-clip"):
            path = os.path.join(MODELS, top)
            if os.path.isdir(path):
                found |= {os.path.join(top, n) for n in os.listdir(path)}
            else:
                found.add(top)
        self.assertEqual(found, set(listed))
        total = 0
        for name, digest in listed.items():
            with open(os.path.join(MODELS, name), "rb") as f:
                data = f.read()
            total += len(data)
            self.assertEqual(hashlib.sha256(data).hexdigest(), digest, name)
        self.assertLessEqual(total, 25 * 1000 * 1000)

    def test_lm_perplexity(self):
        held = os.path.join(self.tmp, "heldout.txt")
        # the held-out stream of the pack's corpus (seed 1), none of them a training story
        gen("gen_stories.py", "--bytes", "4000000", "--seed", "1", "--eot", "--out", os.devnull,
            "--heldout-out", held, "--heldout-bytes", "60000")
        p = subprocess.run([H.BINARY, "perplexity", "-m", os.path.join(MODELS, "story-lm.gguf"),
                            "-f", held, "--json"], capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        print(f"\nstory LM: held-out perplexity {r['ppl']:.3f} over {r['tokens']} tokens "
              f"(bound {PPL_BOUND})", file=sys.stderr)
        self.assertGreater(r["tokens"], 10000)
        self.assertLess(r["ppl"], PPL_BOUND)

    def test_lm_writes_stories(self):
        corpus = os.path.join(self.tmp, "words.txt")
        gen("gen_stories.py", "--bytes", "1000000", "--seed", "1", "--out", corpus)
        with open(corpus, encoding="utf-8") as f:
            known = set(re.findall(r"[a-z']+", f.read().lower()))
        s, _, b = self.d.json("POST", "/v1/completions", {
            "model": "stories", "prompt": "Once upon a time", "max_tokens": 96,
            "temperature": 0}, timeout=120)
        self.assertEqual(s, 200, b)
        text = b["choices"][0]["text"]
        words = re.findall(r"[a-z']+", text.lower())
        print(f"\nstory LM: Once upon a time{text}", file=sys.stderr)
        self.assertGreaterEqual(len(words), 30, text)
        self.assertGreaterEqual(sum(w in known for w in words) / len(words), 0.95, text)
        self.assertGreaterEqual(len(re.findall(r"[.!?]", text)), 2, text)

    def embed(self, texts):
        s, _, b = self.d.json("POST", "/v1/embeddings", {"model": "stories-embed",
                                                          "input": texts}, timeout=120)
        self.assertEqual(s, 200, b)
        return [e["embedding"] for e in sorted(b["data"], key=lambda e: e["index"])]

    def test_paraphrase_retrieval(self):
        path = os.path.join(self.tmp, "para.jsonl")
        gen("gen_paraphrases.py", "--n", str(N_PARA), "--seed", "1", "--out", path)
        with open(path) as f:
            items = [json.loads(line) for line in f if line.strip()]
        correct = 0
        for k in range(0, len(items), 10):
            chunk = items[k:k + 10]
            texts = [t for it in chunk for t in [it["query"], it["positive"], *it["negatives"]]]
            vecs = self.embed(texts)
            at = 0
            for it in chunk:
                n = 2 + len(it["negatives"])
                q, p, negs = vecs[at], vecs[at + 1], vecs[at + 2:at + n]
                at += n
                correct += all(cosine(q, p) > cosine(q, v) for v in negs)
        top1 = correct / len(items)
        print(f"\nembeddings: paraphrase top-1 {top1:.3f} over {len(items)} items "
              f"(bound {TOP1_BOUND}, chance 0.2)", file=sys.stderr)
        self.assertGreaterEqual(top1, TOP1_BOUND)

    def test_clip_unseen_combinations(self):
        data = os.path.join(self.tmp, "shapes")
        gen("gen_shapes.py", "--out", data, "--n", str(N_SHAPES), "--size", "32", "--seed", "11",
            "--jobs", "2")
        with open(os.path.join(data, "meta.json")) as f:
            meta = json.load(f)
        labels = [p[len("a photo of a "):] for p in meta["prompts"]]
        with open(os.path.join(data, "test.jsonl")) as f:
            unseen = [r for r in (json.loads(line) for line in f if line.strip()) if r["unseen"]]
        self.assertGreater(len(unseen), 120)
        hits = shape_hits = color_hits = 0
        for r in unseen:
            with open(os.path.join(data, r["image"]), "rb") as f:
                image = base64.b64encode(f.read()).decode()
            s, _, b = self.d.json("POST", "/v1/classify", {
                "model": "shapes-clip", "image": image, "labels": labels,
                "template": "a photo of a {label}", "top_k": 1}, timeout=60)
            self.assertEqual(s, 200, b)
            size, color, shape = b["data"][0]["label"].split(" ")
            hits += (size, color, shape) == (r["size"], r["color"], r["shape"])
            shape_hits += shape == r["shape"]
            color_hits += color == r["color"]
        n = len(unseen)
        print(f"\nCLIP: zero-shot top-1 on {n} images of unseen colour-shape pairs "
              f"{hits / n:.3f} (128 prompts; shape {shape_hits / n:.3f}, colour "
              f"{color_hits / n:.3f}; bound {CLIP_BOUND})", file=sys.stderr)
        self.assertGreaterEqual(hits / n, CLIP_BOUND)


if __name__ == "__main__":
    H.main(globals())

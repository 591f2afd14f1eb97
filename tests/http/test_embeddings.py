#!/usr/bin/env python3
"""/v1/embeddings against the real daemon: bert-tiny (HF folder and GGUF)
against the sentence-transformers reference, base64, dimensions, batching,
decoder embeddings, errors."""
import base64
import concurrent.futures
import json
import math
import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared")
BERT = os.path.join(SHARED, "conformance", "bert-tiny")
STORIES = os.path.join(SHARED, "models", "stories260K.gguf")


def close(a, b, tol=1e-4):
    return len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b)) <= tol


class Embeddings(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(BERT):
            print("\n*** SKIPPED: ../shared/conformance/bert-tiny is absent ***", file=sys.stderr)
            raise unittest.SkipTest("../shared absent")
        with open(os.path.join(BERT, "reference.json")) as f:
            cls.ref = json.load(f)
        cls.d = H.Daemon("--model", f"bert={BERT}", "--model.bert.embed_max_wait_ms=50",
                         "--model", f"bertg={BERT}/model-f32.gguf",
                         "--model", f"stories={STORIES}", "--model.stories.n_ctx=256").__enter__()

    @classmethod
    def tearDownClass(cls):
        if hasattr(cls, "d"):
            cls.d.__exit__(None, None, None)

    def embed(self, **body):
        return self.d.json("POST", "/v1/embeddings", body, timeout=60)

    def test_reference_embeddings(self):
        texts = [p["text"] for p in self.ref["prompts"]]
        for model in ("bert", "bertg"):
            s, _, b = self.embed(model=model, input=texts)
            self.assertEqual(s, 200, b)
            self.assertEqual(b["object"], "list")
            self.assertEqual(b["model"], model)
            self.assertEqual([e["index"] for e in b["data"]], [0, 1, 2, 3])
            for e, p in zip(b["data"], self.ref["prompts"]):
                self.assertEqual(e["object"], "embedding")
                self.assertTrue(close(e["embedding"], p["mean_normalized"]), (model, p["name"]))
            self.assertEqual(b["usage"]["prompt_tokens"], sum(p["n_tokens"] for p in self.ref["prompts"]))
            # one at a time: the same vectors as in the batch
            for p in self.ref["prompts"]:
                s, _, one = self.embed(model=model, input=p["text"])
                self.assertTrue(close(one["data"][0]["embedding"], p["mean_normalized"]))
        # token ids in, same answer
        p = self.ref["prompts"][1]
        s, _, b = self.embed(model="bert", input=p["input_ids"])
        self.assertTrue(close(b["data"][0]["embedding"], p["mean_normalized"]))
        s, _, b = self.embed(model="bert", input=[p["input_ids"], self.ref["prompts"][0]["input_ids"]])
        self.assertEqual(len(b["data"]), 2)

    def test_base64_and_dimensions(self):
        text = self.ref["prompts"][0]["text"]
        _, _, f = self.embed(model="bert", input=text)
        _, _, b = self.embed(model="bert", input=text, encoding_format="base64")
        raw = base64.b64decode(b["data"][0]["embedding"])
        floats = list(struct.unpack("<%df" % (len(raw) // 4), raw))
        self.assertEqual(len(floats), 32)
        self.assertTrue(close(floats, f["data"][0]["embedding"], 1e-6))
        _, _, d = self.embed(model="bert", input=text, dimensions=8)
        v = d["data"][0]["embedding"]
        self.assertEqual(len(v), 8)
        self.assertAlmostEqual(math.sqrt(sum(x * x for x in v)), 1.0, places=5)
        full = f["data"][0]["embedding"][:8]
        norm = math.sqrt(sum(x * x for x in full))
        self.assertTrue(close(v, [x / norm for x in full], 1e-5))

    def test_decoder_embeddings(self):
        s, _, b = self.embed(model="stories", input=["Once upon a time", "Lily wanted to"])
        self.assertEqual(s, 200, b)
        for e in b["data"]:
            self.assertEqual(len(e["embedding"]), 64)
            self.assertAlmostEqual(math.sqrt(sum(x * x for x in e["embedding"])), 1.0, places=4)
        self.assertNotEqual(b["data"][0]["embedding"], b["data"][1]["embedding"])

    def metric(self, name):
        import re
        m = self.d.request("GET", "/metrics")[2].decode()
        return int(re.search(r'^%s\{model="bert"\} (\d+)$' % name, m, re.M).group(1))

    def test_concurrent_requests_share_passes(self):
        texts = [p["text"] for p in self.ref["prompts"]]
        batches0, reqs0 = self.metric("alignd_embedding_batches_total"), self.metric("alignd_embedding_requests_total")
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            outs = list(ex.map(lambda i: self.embed(model="bert", input=texts[i % 4]), range(32)))
        for i, (s, _, b) in enumerate(outs):
            self.assertEqual(s, 200, b)
            self.assertTrue(close(b["data"][0]["embedding"], self.ref["prompts"][i % 4]["mean_normalized"]))
        batches = self.metric("alignd_embedding_batches_total") - batches0
        reqs = self.metric("alignd_embedding_requests_total") - reqs0
        self.assertEqual(reqs, 32)
        self.assertLess(batches, reqs)  # requests were packed together, not run one by one

    def test_long_inputs(self):
        long_text = "word " * 600
        s, _, b = self.embed(model="bert", input=["short", long_text])
        self.assertEqual((s, b["error"]["param"], b["error"]["code"]), (400, "input", "context_length_exceeded"))
        self.assertIn("input[1]", b["error"]["message"])
        s, _, b = self.embed(model="bert", input=["short", long_text], truncate=True)
        self.assertEqual(s, 200, b)
        self.assertEqual(b["usage"]["prompt_tokens"], 3 + 512)

    def test_errors(self):
        cases = [
            ({"input": "x"}, 400, "model"),
            ({"model": "nope", "input": "x"}, 404, "model"),
            ({"model": "bert"}, 400, "input"),
            ({"model": "bert", "input": ""}, 400, "input"),
            ({"model": "bert", "input": []}, 400, "input"),
            ({"model": "bert", "input": ["ok", ""]}, 400, "input"),
            ({"model": "bert", "input": [[]]}, 400, "input"),
            ({"model": "bert", "input": [5, 99999999]}, 422, "input"),
            ({"model": "bert", "input": "x", "encoding_format": "hex"}, 422, "encoding_format"),
            ({"model": "bert", "input": "x", "dimensions": 0}, 422, "dimensions"),
            ({"model": "bert", "input": "x", "dimensions": 33}, 422, "dimensions"),
            ({"model": "bert", "input": 5}, 400, "input"),
        ]
        for body, status, param in cases:
            s, _, b = self.d.json("POST", "/v1/embeddings", body)
            self.assertEqual((s, b["error"]["param"]), (status, param), (body, b))
        s, _, b = self.d.json("POST", "/v1/completions", {"model": "bert", "prompt": "x"})
        self.assertEqual((s, b["error"]["param"]), (422, "model"))
        self.assertIn("/v1/embeddings", b["error"]["message"])


if __name__ == "__main__":
    H.main(globals())

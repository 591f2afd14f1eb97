#!/usr/bin/env python3
"""CLIP through the API: /v1/classify against the clip-tiny reference
(probabilities of "a photo of a {cat,dog,car,tree}." per image), PNG and
JPEG, raw base64 and data URLs, prompt ensembling, image and text
embeddings, concurrency, and the error cases."""
import base64
import concurrent.futures
import json
import math
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLIP = os.path.join(HERE, "..", "..", "..", "shared", "conformance", "clip-tiny")
JPEG = os.path.join(HERE, "..", "fixtures", "red_blue_40x30.jpg")


def b64(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


class Classify(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(CLIP):
            print("\n*** SKIPPED: ../shared/conformance/clip-tiny is absent ***", file=sys.stderr)
            raise unittest.SkipTest("../shared absent")
        with open(os.path.join(CLIP, "reference.json")) as f:
            cls.ref = json.load(f)
        cls.d = H.Daemon("--model", f"clip={CLIP}", "--server.max_body_size=64M").__enter__()

    @classmethod
    def tearDownClass(cls):
        if hasattr(cls, "d"):
            cls.d.__exit__(None, None, None)

    def classify(self, **body):
        body.setdefault("model", "clip")
        return self.d.json("POST", "/v1/classify", body, timeout=60)

    def test_reference_probabilities(self):
        labels = ["cat", "dog", "car", "tree"]
        for i, name in enumerate(["red_square.png", "blue_circle.png"]):
            for image in (b64(os.path.join(CLIP, name)), "data:image/png;base64," + b64(os.path.join(CLIP, name))):
                s, _, b = self.classify(image=image, labels=labels)
                self.assertEqual(s, 200, b)
                self.assertEqual(b["object"], "classification")
                got = {e["label"]: e["probability"] for e in b["data"]}
                for k, label in enumerate(labels):
                    self.assertAlmostEqual(got[label], self.ref["probs"][i][k], delta=1e-4)
                probs = [e["probability"] for e in b["data"]]
                self.assertEqual(probs, sorted(probs, reverse=True))
                self.assertAlmostEqual(sum(probs), 1.0, places=5)
                self.assertEqual(b["data"][0]["label"], labels[self.ref["argmax_label_per_image"][i]]
                                 if isinstance(self.ref["argmax_label_per_image"][i], int)
                                 else self.ref["argmax_label_per_image"][i])
        s, _, b = self.classify(image=b64(os.path.join(CLIP, "red_square.png")), labels=labels, top_k=2)
        self.assertEqual(len(b["data"]), 2)

    def test_templates_and_jpeg(self):
        img = b64(os.path.join(CLIP, "blue_circle.png"))
        s, _, one = self.classify(image=img, labels=["cat", "dog"], template="a photo of a {label}.")
        s2, _, ens = self.classify(image=img, labels=["cat", "dog"],
                                   templates=["a photo of a {label}.", "a drawing of a {label}."])
        self.assertEqual((s, s2), (200, 200))
        self.assertAlmostEqual(sum(e["probability"] for e in ens["data"]), 1.0, places=5)
        self.assertNotEqual(one["data"][0]["probability"], ens["data"][0]["probability"])
        s, _, b = self.classify(image="data:image/jpeg;base64," + b64(JPEG), labels=["cat", "dog", "car"])
        self.assertEqual(s, 200, b)
        self.assertEqual(len(b["data"]), 3)

    def test_embeddings(self):
        s, _, b = self.d.json("POST", "/v1/images/embeddings",
                              {"model": "clip", "image": b64(os.path.join(CLIP, "red_square.png"))})
        self.assertEqual(s, 200, b)
        v = b["data"][0]["embedding"]
        want = self.ref["image_embeds_normalized"][0]
        self.assertEqual(len(v), len(want))
        self.assertLess(max(abs(x - y) for x, y in zip(v, want)), 1e-4)
        s, _, b = self.d.json("POST", "/v1/embeddings", {"model": "clip", "input": self.ref["label_prompts"]})
        self.assertEqual(s, 200, b)
        for e, want in zip(b["data"], self.ref["text_embeds_normalized"]):
            self.assertLess(max(abs(x - y) for x, y in zip(e["embedding"], want)), 1e-4)

    def test_concurrent(self):
        imgs = [b64(os.path.join(CLIP, n)) for n in ("red_square.png", "blue_circle.png")]
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            outs = list(ex.map(lambda i: self.classify(image=imgs[i % 2], labels=["cat", "dog", "car", "tree"]), range(16)))
        for i, (s, _, b) in enumerate(outs):
            self.assertEqual(s, 200, b)
            got = {e["label"]: e["probability"] for e in b["data"]}
            self.assertAlmostEqual(got["cat"], self.ref["probs"][i % 2][0], delta=1e-4)

    def test_errors(self):
        img = b64(os.path.join(CLIP, "red_square.png"))
        png = base64.b64decode(img)
        cases = [
            ({"image": img, "labels": []}, 400, "labels"),
            ({"image": img, "labels": ["cat", ""]}, 400, "labels"),
            ({"image": img, "labels": ["x"] * 257}, 422, "labels"),
            ({"image": img}, 400, "labels"),
            ({"labels": ["cat"]}, 400, "image"),
            ({"image": img, "labels": ["cat"], "template": "no placeholder"}, 422, "template"),
            ({"image": img, "labels": ["cat"], "top_k": 2}, 422, "top_k"),
            ({"image": "http://example.com/cat.png", "labels": ["cat"]}, 400, "image"),
            ({"image": "!!!notbase64!!!", "labels": ["cat"]}, 400, "image"),
            ({"image": base64.b64encode(png[: len(png) // 2]).decode(), "labels": ["cat"]}, 400, "image"),
            ({"image": base64.b64encode(b"GIF89a....").decode(), "labels": ["cat"]}, 400, "image"),
        ]
        for body, status, param in cases:
            s, _, b = self.classify(**body)
            self.assertEqual((s, b["error"]["param"]), (status, param), (body.get("labels", [])[:3], b))
        s, _, b = self.d.json("POST", "/v1/classify", {"model": "nope", "image": img, "labels": ["cat"]})
        self.assertEqual(s, 404)

    def test_oversized_image(self):
        # a PNG that declares 100000 x 100000 pixels: refused before decoding
        import struct, zlib
        def chunk(t, data):
            return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xffffffff)
        png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)) + \
            chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
        s, _, b = self.classify(image=base64.b64encode(png).decode(), labels=["cat"])
        self.assertEqual((s, b["error"]["param"]), (400, "image"), b)
        self.assertIn("pixels", b["error"]["message"])


if __name__ == "__main__":
    H.main(globals())

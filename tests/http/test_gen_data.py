#!/usr/bin/env python3
"""The corpus generators of the default model pack (models/gen): the story
corpus, the paraphrase retrieval set and the shapes image-caption set are
deterministic, keep to their size, read as grammatical stories (complete
paragraphs, balanced quotes, no template left-overs, past-tense narration,
pronouns that agree with the characters), the retrieval items are
well-formed and hard (a negative is never the positive), the PNGs decode
with the shape's colour on a different background, and the held-out
colour-shape combinations are in test.jsonl only. Standard library only;
does not use the alignd binary (--binary is accepted and ignored)."""
import argparse
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.normpath(os.path.join(HERE, "..", "..", "models", "gen"))
sys.dont_write_bytecode = True  # models/ is installed as it is: no __pycache__ there
sys.path.insert(0, GEN)
import gen_paraphrases  # noqa: E402
import gen_shapes  # noqa: E402
import gen_stories  # noqa: E402
import world  # noqa: E402


def run(script, *args):
    p = subprocess.run([sys.executable, os.path.join(GEN, script), *map(str, args)],
                       capture_output=True, timeout=120,
                       env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    if p.returncode != 0:
        raise AssertionError(f"{script} {args} failed: {p.stderr.decode(errors='replace')}")
    return p


def read_png(path):
    """(width, height, rows of RGB bytes) of an 8-bit RGB or RGBA PNG,
    non-interlaced; checks the signature and every chunk's CRC."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"bad CRC in {kind}"
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = ihdr
    assert depth == 8 and ctype in (2, 6) and interlace == 0, ihdr
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    assert len(raw) == h * (stride + 1), "wrong amount of image data"
    rows, prev = [], bytearray(stride)
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ft == 1:
                line[i] = (line[i] + a) & 255
            elif ft == 2:
                line[i] = (line[i] + b) & 255
            elif ft == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ft == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 255
            else:
                assert ft == 0, f"filter {ft}"
        if bpp == 4:
            line = bytearray(b for i, b in enumerate(line) if i % 4 != 3)
        rows.append(bytes(line))
        prev = line if bpp == 3 else prev
    return w, h, rows


def pixels(rows):
    return [tuple(r[i:i + 3]) for r in rows for i in range(0, len(r), 3)]


QUOTED = re.compile(r'"[^"]*"')
NAMES = world.all_characters()
NAME_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, NAMES), key=len, reverse=True))
                     + r")\b")
PRON_WORDS = {"she": ("she", "her", "hers", "herself"), "he": ("he", "him", "his", "himself")}


class Stories(unittest.TestCase):
    N = 300_000

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gen_stories_")
        cls.held = os.path.join(cls.tmp, "held.txt")
        cls.data = run("gen_stories.py", "--bytes", cls.N, "--seed", 3,
                       "--heldout-out", cls.held).stdout
        cls.text = cls.data.decode("utf-8")
        cls.paras = cls.text.split("\n\n")
        assert cls.paras[-1] == "", "the corpus ends with a blank line"
        cls.paras = cls.paras[:-1]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_deterministic(self):
        again = run("gen_stories.py", "--bytes", self.N, "--seed", 3).stdout
        self.assertEqual(again, self.data)
        other = run("gen_stories.py", "--bytes", self.N, "--seed", 4).stdout
        self.assertNotEqual(other, self.data)
        # a smaller corpus is a prefix of a larger one; in-process is the same
        small = gen_stories.corpus(3, 50_000)
        self.assertTrue(self.data.startswith(small))
        self.assertEqual(gen_stories.corpus(3, self.N), self.data)

    def test_size_bound(self):
        self.assertLessEqual(len(self.data), self.N)
        longest = max(len(p.encode("utf-8")) for p in self.paras) + 2
        self.assertGreater(len(self.data), self.N - longest)
        self.assertLess(longest, 2000)
        self.assertEqual(gen_stories.corpus(3, 10), b"")
        for n in (1234, 20_000, 77_777):
            d = gen_stories.corpus(9, n)
            self.assertLessEqual(len(d), n)
            self.assertGreater(len(d), n - 2000)

    def test_paragraphs_are_complete(self):
        self.assertGreater(len(self.paras), 400)
        for p in self.paras:
            self.assertNotIn("\n", p)
            self.assertTrue(p[:1].isupper() or p[:1] == '"', p)
            self.assertRegex(p, r'[.!?]"?$')
            self.assertEqual(p.count('"') % 2, 0, p)
            for bad in ("{", "}", "<", ">", "None", "  ", " ,", " .", "..", ",.", "_", "\t"):
                self.assertNotIn(bad, p)
            # sentences start with a capital letter
            for m in re.finditer(r'[.!?] ([a-z])', QUOTED.sub('"Q"', p)):
                self.fail(f"lower-case sentence start in: {p}")
            # articles
            self.assertIsNone(re.search(r"\ba [aeio]", p), p)
            self.assertIsNone(re.search(r"\ban [bcdfgjklmnpqrstvwxyz]", p), p)

    def test_sentences_per_story(self):
        r = random.Random(11)
        for plot in gen_stories.PLOTS:
            for _ in range(60):
                st = gen_stories.Story(r)
                plot(st)
                self.assertGreaterEqual(len(st.out), 5, plot.__name__)
                self.assertLessEqual(len(st.out), 12, (plot.__name__, st.text()))

    def test_past_tense_narration(self):
        """Narration (outside quotes) is in the past tense: no is/are/has...
        except in a lesson ('learned that sharing makes everyone happy')."""
        for p in self.paras:
            narr = QUOTED.sub(" Q ", p)
            narr = re.sub(r"learned that [^.!?]*", "", narr)
            m = re.search(r"\b(is|are|am|has|does|doesn't|isn't|aren't|can|will|won't)\b", narr)
            self.assertIsNone(m, p)

    def test_agreement(self):
        for p in self.paras:
            for bad in (r"\b(he|she) were\b", r"\bthey was\b", r"\bI (is|are|was not sure)\b",
                        r"\bwe was\b", r"\byou was\b", r"\b(he|she) (are|have)\b"):
                self.assertIsNone(re.search(bad, p, re.I), p)

    def test_pronouns_match_characters(self):
        """In a story whose characters are all girls (or all boys), no
        pronoun of the other gender appears; a reflexive matches someone."""
        checked = {"she": 0, "he": 0}
        for p in self.paras:
            classes = {NAMES[m] for m in NAME_RE.findall(p)}
            words = set(re.findall(r"[a-z]+", p.lower()))
            if classes == {"she"}:
                self.assertFalse(words & set(PRON_WORDS["he"]), p)
                checked["she"] += 1
            elif classes == {"he"}:
                self.assertFalse(words & set(PRON_WORDS["she"]), p)
                checked["he"] += 1
            for sent in re.split(r"(?<=[.!?])\s+", p):
                low = sent.lower()
                for refl, cls in (("herself", "she"), ("himself", "he")):
                    if refl in low:
                        self.assertTrue(re.search(r"\b" + PRON_WORDS[cls][0] + r"\b", low)
                                        or any(NAMES[n] == cls for n in NAME_RE.findall(sent)),
                                        sent)
        self.assertGreater(checked["she"], 30, checked)
        self.assertGreater(checked["he"], 30, checked)

    def test_vocabulary(self):
        words = gen_stories.distinct_words(self.text)
        self.assertGreater(len(words), 700)
        self.assertLess(len(words), 2500)
        # many plots and sentence shapes, not a handful of frames
        starts = {" ".join(p.split()[:3]) for p in self.paras}
        self.assertGreater(len(starts), 50)
        self.assertGreater(len(set(self.paras)), 0.98 * len(self.paras))

    def test_heldout(self):
        with open(self.held, "rb") as f:
            held = f.read()
        self.assertLessEqual(len(held), self.N // 10)
        self.assertGreater(len(held), self.N // 10 - 2000)
        hp = held.decode("utf-8").split("\n\n")[:-1]
        self.assertFalse(set(hp) & set(self.paras))
        self.assertNotEqual(held, self.data[:len(held)])

    def test_chinese_and_eot(self):
        d = gen_stories.corpus(5, 60_000, chinese_share=0.3).decode("utf-8")
        paras = d.split("\n\n")[:-1]
        zh = [p for p in paras if re.search(r"[\u4e00-\u9fff]", p)]
        self.assertGreater(len(zh), 0.15 * len(paras))
        self.assertLess(len(zh), 0.45 * len(paras))
        for p in zh:
            self.assertRegex(p, r"[。！？”]$")
            self.assertEqual(p.count("“"), p.count("”"), p)
            self.assertIsNone(re.search(r"[A-Za-z{}]", p), p)
        d = gen_stories.corpus(5, 30_000, eot=True).decode("utf-8")
        for p in d.split("\n\n")[:-1]:
            self.assertTrue(p.endswith("<|endoftext|>"), p)
            self.assertEqual(p.count("<|endoftext|>"), 1)


class Paraphrases(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gen_para_")
        cls.path = os.path.join(cls.tmp, "p.jsonl")
        run("gen_paraphrases.py", "--n", 600, "--seed", 2, "--out", cls.path)
        with open(cls.path, "rb") as f:
            cls.data = f.read()
        cls.items = [json.loads(x) for x in cls.data.decode("utf-8").splitlines()]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_deterministic(self):
        self.assertEqual(run("gen_paraphrases.py", "--n", 600, "--seed", 2).stdout, self.data)
        self.assertNotEqual(run("gen_paraphrases.py", "--n", 600, "--seed", 3).stdout, self.data)

    def test_well_formed(self):
        self.assertEqual(len(self.items), 600)
        queries = set()
        for it in self.items:
            q, pos, negs = it["query"], it["positive"], it["negatives"]
            self.assertEqual(len(negs), 4)
            self.assertEqual(len(it["negative_kinds"]), 4)
            self.assertNotEqual(q, pos)
            self.assertEqual(len(set(negs)), 4, it)
            for s in [q, pos, *negs]:
                self.assertIsInstance(s, str)
                self.assertRegex(s, r"^[A-Z][^{}<>_]*[.!?]$")
                self.assertNotIn("  ", s)
            for n in negs:
                self.assertNotEqual(n, pos)
                self.assertNotEqual(n, q)
            self.assertNotIn(q, queries)
            queries.add(q)
        kinds = {it["kind"] for it in self.items}
        self.assertEqual(kinds, {k.name for k in gen_paraphrases.KINDS})

    def test_hard_negatives(self):
        """Negatives share words with the query: a bag-of-words matcher
        does no better than chance (1/5), the set tests meaning."""
        def bag(s):
            return set(re.findall(r"[a-z']+", s.lower()))

        def jac(a, b):
            return len(a & b) / len(a | b)
        right = 0
        overlap = []
        for it in self.items:
            q = bag(it["query"])
            sp = jac(q, bag(it["positive"]))
            sn = [jac(q, bag(n)) for n in it["negatives"]]
            right += all(sp > s for s in sn)
            overlap.append(max(sn))
        self.assertLess(right / len(self.items), 0.2)
        self.assertGreater(sum(overlap) / len(overlap), 0.6)

    def test_role_swaps(self):
        """A "swap" negative has the same participants as the query, in
        other roles (Tom gave Lily / Lily gave Tom)."""
        nouns = set(world.SPECIES) | set(gen_paraphrases.PLACE_OBJECTS)

        def who(s):
            found = set(NAME_RE.findall(s))
            low = s.lower()
            return found | {n for n in nouns if re.search(r"\b" + n + r"\b", low)}
        swaps = 0
        for it in self.items:
            for kind, n in zip(it["negative_kinds"], it["negatives"]):
                if kind == "swap":
                    swaps += 1
                    self.assertEqual(who(n), who(it["query"]), it)
        self.assertGreater(swaps, 100)

    def test_words_from_the_story_world(self):
        corpus = gen_stories.corpus(1, 2_000_000).decode("utf-8")
        vocab = {w.split("'")[0] for w in gen_stories.distinct_words(corpus)}
        used = {w.split("'")[0] for it in self.items
                for s in [it["query"], it["positive"], *it["negatives"]]
                for w in gen_stories.distinct_words(s)}
        missing = sorted(used - vocab)
        self.assertLess(len(missing), 0.02 * len(used), missing)

    def test_exclude(self):
        other = os.path.join(self.tmp, "o.jsonl")
        run("gen_paraphrases.py", "--n", 300, "--seed", 2, "--exclude", self.path,
            "--out", other)
        seen = {s for it in self.items for s in (it["query"], it["positive"])}
        with open(other, encoding="utf-8") as f:
            rows = [json.loads(x) for x in f]
        self.assertEqual(len(rows), 300)
        for it in rows:
            self.assertNotIn(it["query"], seen)
            self.assertNotIn(it["positive"], seen)


class Shapes(unittest.TestCase):
    N = 240

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gen_shapes_")
        cls.a = os.path.join(cls.tmp, "a")
        cls.grid = os.path.join(cls.tmp, "grid.png")
        cls.stderr = run("gen_shapes.py", "--out", cls.a, "--n", cls.N, "--size", 32,
                         "--seed", 1, "--grid", cls.grid).stderr.decode()
        cls.train = cls.jsonl(os.path.join(cls.a, "train.jsonl"))
        cls.test = cls.jsonl(os.path.join(cls.a, "test.jsonl"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @staticmethod
    def jsonl(path):
        with open(path, encoding="utf-8") as f:
            return [json.loads(x) for x in f]

    def test_deterministic(self):
        b = os.path.join(self.tmp, "b")
        c = os.path.join(self.tmp, "c")
        run("gen_shapes.py", "--out", b, "--n", 60, "--size", 32, "--seed", 1, "--jobs", 2)
        run("gen_shapes.py", "--out", c, "--n", 60, "--size", 32, "--seed", 2)
        same = diff = 0
        for i in range(60):
            name = f"images/{i:06d}.png"
            with open(os.path.join(self.a, name), "rb") as f:
                ia = f.read()
            with open(os.path.join(b, name), "rb") as f:
                self.assertEqual(f.read(), ia, name)  # a prefix of the larger set
            with open(os.path.join(c, name), "rb") as f:
                if f.read() == ia:
                    same += 1
                else:
                    diff += 1
        self.assertGreater(diff, 55)
        # the labels of the first 60 agree with the larger run
        small = (self.jsonl(os.path.join(b, "train.jsonl"))
                 + self.jsonl(os.path.join(b, "test.jsonl")))
        big = {r["image"]: r for r in self.train + self.test}
        for r in small:
            self.assertEqual(big[r["image"]], r)

    def test_splits_and_labels(self):
        recs = self.train + self.test
        self.assertEqual(len(recs), self.N)
        self.assertEqual(len({r["image"] for r in recs}), self.N)
        for r in recs:
            self.assertIn(r["shape"], gen_shapes.SHAPES)
            self.assertIn(r["color"], gen_shapes.COLORS)
            self.assertIn(r["size"], gen_shapes.SIZES)
            self.assertEqual(r["caption"], f"a photo of a {r['size']} {r['color']} {r['shape']}")
            self.assertEqual(r["unseen"], (r["color"], r["shape"]) in gen_shapes.HELDOUT)
        held = set(gen_shapes.HELDOUT)
        self.assertFalse([r for r in self.train if (r["color"], r["shape"]) in held])
        in_test = {(r["color"], r["shape"]) for r in self.test if r["unseen"]}
        self.assertEqual(in_test, held)
        self.assertTrue([r for r in self.test if not r["unseen"]])
        self.assertEqual(len(gen_shapes.HELDOUT), 8)
        # every colour and every shape is still seen in training
        self.assertEqual({r["color"] for r in self.train}, set(gen_shapes.COLORS))
        self.assertEqual({r["shape"] for r in self.train}, set(gen_shapes.SHAPES))
        with open(os.path.join(self.a, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        self.assertEqual(meta["train"], len(self.train))
        self.assertEqual(meta["test_unseen"], sum(r["unseen"] for r in self.test))
        self.assertEqual(len(meta["prompts"]), 128)
        self.assertIn("images/s", self.stderr)

    def test_images(self):
        for r in self.train + self.test:
            w, h, rows = read_png(os.path.join(self.a, r["image"]))
            self.assertEqual((w, h), (32, 32))
            px = pixels(rows)
            want = gen_shapes.COLORS[r["color"]]

            def near(c, tol):
                return max(abs(x - y) for x, y in zip(c, want)) <= tol
            shape_px = sum(1 for c in px if near(c, 14))
            minimum = 8 if r["size"] == "small" else 60
            self.assertGreaterEqual(shape_px, minimum, r)
            # the corners are background, far from the shape's colour
            for c in (px[0], px[31], px[-32], px[-1]):
                self.assertFalse(near(c, 40), (r, c))
            # a large shape covers more than a small one
            if r["size"] == "small":
                self.assertLess(shape_px, 250, r)

    def test_grid(self):
        w, h, rows = read_png(self.grid)
        self.assertEqual((w, h), (8 * (32 * 2 + 2) + 2, 8 * (32 * 2 + 2) + 2))
        self.assertEqual(rows[0][:3], bytes((128, 128, 128)))

    def test_png_writer_roundtrip(self):
        rows = [b"".join(bytes((x * 40 % 256, y * 30 % 256, (x * y) % 256)) for x in range(7))
                for y in range(5)]
        path = os.path.join(self.tmp, "t.png")
        with open(path, "wb") as f:
            f.write(gen_shapes.png_bytes(7, 5, rows))
        self.assertEqual(read_png(path), (7, 5, rows))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--binary")
    _, rest = ap.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest)

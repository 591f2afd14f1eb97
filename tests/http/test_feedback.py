#!/usr/bin/env python3
"""Preference feedback over REST: create (single, batch, conversational),
validation (nothing stored on a bad item), idempotent retries, pagination,
filters, get/delete, JSONL export in TRL's form, stats, and SIGKILL
durability (every 201 survives, integrity_check ok)."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402


def item(i, **kw):
    d = {"prompt": f"prompt {i}", "chosen": f"good {i}", "rejected": f"bad {i}", "annotator": "ann" if i % 2 else "bob"}
    d.update(kw)
    return d


class Feedback(unittest.TestCase):
    def setUp(self):
        self.d = H.Daemon("--feedback.max_batch=10", "--feedback.max_text_bytes=1000").__enter__()

    def tearDown(self):
        self.d.__exit__(None, None, None)

    def post(self, body, headers=None):
        return self.d.json("POST", "/v1/feedback", body, headers)

    def count(self):
        return self.d.json("GET", "/v1/feedback/stats")[2]["total"]

    def test_create_get_delete(self):
        s, _, b = self.post(item(1, model="stories", comment="nice", metadata={"ui": "test"}))
        self.assertEqual(s, 201, b)
        self.assertRegex(b["id"], r"^fb_[0-9a-f]{24}$")
        self.assertEqual((b["kind"], b["source"], b["metadata"]), ("pair", "api", {"ui": "test"}))
        self.assertIn(b["split"], ("train", "eval"))
        s, _, g = self.d.json("GET", "/v1/feedback/" + b["id"])
        self.assertEqual((s, g), (200, b))
        s, _, f = self.post(item(2, source="form"))
        self.assertEqual((s, f["source"]), (201, "form"))
        s, _, bad = self.post(item(3, source="email"))
        self.assertEqual((s, bad["error"]["param"]), (422, "source"))
        s, _, dl = self.d.json("DELETE", "/v1/feedback/" + b["id"])
        self.assertEqual((s, dl["deleted"]), (200, True))
        self.assertEqual(self.d.json("GET", "/v1/feedback/" + b["id"])[0], 404)
        self.assertEqual(self.d.json("DELETE", "/v1/feedback/" + b["id"])[0], 404)

    def test_batch_conversational_and_kinds(self):
        conv = {"prompt": [{"role": "user", "content": "2+2?"}],
                "chosen": [{"role": "assistant", "content": "4"}],
                "rejected": [{"role": "assistant", "content": "5"}]}
        s, _, b = self.post([item(1), conv, item(3, kind="tie", chosen="same", rejected="same"), item(4, kind="both_bad")])
        self.assertEqual(s, 201, b)
        self.assertEqual(len(b["data"]), 4)
        self.assertEqual(b["data"][1]["prompt"], conv["prompt"])
        s, _, ex = self.d.request("GET", "/v1/feedback/export")
        self.assertEqual(s, 200)
        lines = [json.loads(l) for l in ex.decode().splitlines()]
        self.assertEqual(len(lines), 2)  # pairs only by default
        by_kind = {isinstance(l["prompt"], list): l for l in lines}  # one text pair, one conversational
        self.assertEqual(by_kind[True]["chosen"], conv["chosen"])
        self.assertEqual(by_kind[False]["chosen"], "good 1")
        self.assertEqual(set(lines[0]), {"prompt", "chosen", "rejected", "id"})
        s, _, ex = self.d.request("GET", "/v1/feedback/export?all=true")
        self.assertEqual(len(ex.decode().splitlines()), 4)
        st = self.d.json("GET", "/v1/feedback/stats")[2]
        self.assertEqual((st["total"], st["by_kind"]), (4, {"pair": 2, "tie": 1, "both_bad": 1}))

    def test_validation_stores_nothing(self):
        cases = [
            ([item(1), item(2, chosen="")], 400, "chosen"),
            ([item(1), {"prompt": "p", "chosen": "x"}], 400, "rejected"),
            ([item(1, chosen="same", rejected="same")], 422, "rejected"),
            ([item(1, kind="maybe")], 422, "kind"),
            ([item(1, chosen="x" * 1001)], 422, "chosen"),
            ([item(1, metadata=[1])], 400, "metadata"),
            ([item(1, prompt=[{"role": "robot", "content": "x"}], chosen=[], rejected=[])], 422, "prompt"),
            ([item(1, prompt=[{"role": "user", "content": "x"}], chosen=[], rejected=[])], 400, "chosen"),
            ([item(i) for i in range(11)], 422, "items"),
            ([], 422, "items"),
        ]
        for body, status, param in cases:
            s, _, b = self.post(body)
            self.assertEqual((s, b["error"]["param"]), (status, param), b)
        self.assertEqual(self.count(), 0)
        s, _, b = self.d.request("POST", "/v1/feedback", b'{"prompt": "\xff\xfe"}', {"Content-Type": "application/json"})
        self.assertEqual(s, 400)

    def test_idempotency(self):
        h = {"Idempotency-Key": "retry-1"}
        s1, _, b1 = self.post([item(1), item(2)], h)
        s2, h2, b2 = self.post([item(1), item(2)], h)
        self.assertEqual((s1, s2), (201, 200))
        self.assertEqual([r["id"] for r in b1["data"]], [r["id"] for r in b2["data"]])
        self.assertEqual(h2.get("idempotent-replayed"), "true")
        self.assertEqual(self.count(), 2)
        s3, _, b3 = self.post([item(9)], h)  # same key, different body
        self.assertEqual(s3, 409, b3)

    def test_pagination_and_filters(self):
        for i in range(25):
            self.assertEqual(self.post(item(i, kind="tie" if i % 5 == 0 else "pair"))[0], 201)
        seen, cursor, pages = [], None, 0
        while True:
            q = "/v1/feedback?limit=10" + (f"&after={cursor}" if cursor else "")
            s, _, b = self.d.json("GET", q)
            self.assertEqual(s, 200, b)
            seen += [r["id"] for r in b["data"]]
            pages += 1
            if pages == 1:  # a row arriving meanwhile must not disturb the walk
                self.post(item(99))
            if not b["has_more"]:
                break
            cursor = b["next_cursor"]
        self.assertEqual(pages, 3)
        self.assertEqual(len(seen), 25)
        self.assertEqual(len(set(seen)), 25)
        s, _, b = self.d.json("GET", "/v1/feedback?kind=tie&limit=100")
        self.assertEqual(len(b["data"]), 5)
        s, _, b = self.d.json("GET", "/v1/feedback?annotator=bob&limit=100")
        self.assertTrue(all(r["annotator"] == "bob" for r in b["data"]))
        self.assertEqual(self.d.json("GET", "/v1/feedback?limit=0")[0], 422)
        self.assertEqual(self.d.json("GET", "/v1/feedback?kind=nope")[0], 422)
        self.assertEqual(self.d.json("GET", "/v1/feedback?after=garbage")[0], 422)


class Prompts(unittest.TestCase):
    def test_prompts_file(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("First prompt\n\nSecond prompt\r\n")
        try:
            with H.Daemon(f"--feedback.prompts_file={f.name}") as d:
                s, _, b = d.json("GET", "/v1/feedback/prompts")
                self.assertEqual((s, b["data"]), (200, ["First prompt", "Second prompt"]))
            with H.Daemon() as d:
                self.assertEqual(d.json("GET", "/v1/feedback/prompts")[2]["data"], [])
        finally:
            os.unlink(f.name)
        r = subprocess.run([H.BINARY, "--feedback.prompts_file=/nonexistent/prompts.txt",
                            f"--server.port={H.free_port()}"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("/nonexistent/prompts.txt", r.stderr)


class Durability(unittest.TestCase):
    def test_sigkill_keeps_acknowledged_writes(self):
        d = H.Daemon().__enter__()
        acked, stop = [], threading.Event()

        def writer():
            i = 0
            while not stop.is_set():
                try:
                    s, _, b = d.json("POST", "/v1/feedback", item(i), timeout=5)
                except OSError:
                    return
                if s == 201:
                    acked.append(b["id"])
                i += 1

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(1.0)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        stop.set()
        t.join(10)
        self.assertGreater(len(acked), 10)
        db = os.path.join(d.tmp, "alignd.db")
        con = sqlite3.connect(db)
        self.assertEqual(con.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        stored = {r[0] for r in con.execute("SELECT id FROM feedback")}
        con.close()
        self.assertTrue(set(acked) <= stored, set(acked) - stored)
        # and the daemon starts again on the same file
        d2 = H.Daemon(f"--store.path={db}").__enter__()
        try:
            self.assertGreaterEqual(d2.json("GET", "/v1/feedback/stats")[2]["total"], len(acked))
        finally:
            d2.__exit__(None, None, None)
        d.__exit__(None, None, None)


if __name__ == "__main__":
    H.main(globals())

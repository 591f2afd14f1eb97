#!/usr/bin/env python3
"""Two daemons (replicas) on one PostgreSQL store (store.url), with a shared
training dir, on stories260K (../shared/models):

- exactly one holds the trainer lock (alignd_trainer_leader), the first
  started;
- feedback posted to either is listed by the other (and counted in its
  stats);
- a run queued through the replica that does not train is claimed and run by
  the trainer; a second one is refused (409 training_busy) on either;
- the adapter the trainer's gate activates is served by the other replica
  within seconds (announced by NOTIFY: the polling interval is set to a
  minute here), and a rollback to the base through the other replica is
  served by the trainer within seconds;
- killing the trainer (SIGKILL) makes the other replica take the lock
  within seconds; the killed one, restarted, waits;
- a run the new trainer runs, cancelled through the restarted replica,
  ends "cancelled" (the store's cancel flag).

Needs the PostgreSQL server of ctest's "pg" fixture (its URL in the file
named by ALIGND_TEST_PG_URL_FILE, or ALIGND_TEST_PG_URL) and ../shared;
skips loudly without them."""
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402
import pairs_util as P  # noqa: E402
from pg_util import pg_url, psql, with_schema  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "..", "..", "shared", "models", "stories260K.gguf")
FAST = ["--training.epochs=4", "--training.batch=8", "--training.lr=2e-3",
        "--training.lora_targets=q,k,v,o", "--training.kl_max=50",
        "--training.gate_rm_min_accuracy=2"]
SLOW = ["--training.epochs=500", "--training.batch=8", "--training.lr=2e-3",
        "--training.lora_targets=q,k,v,o"]
WITHIN = 10  # seconds a replica may take to see what the other did


def metric(d, name):
    s, _, b = d.request("GET", "/metrics")
    assert s == 200, s
    m = re.search(rf"^{name} (\S+)$", b.decode(), re.M)
    assert m, f"{name} missing from /metrics"
    return float(m.group(1))


def eventually(fn, what, timeout=WITHIN):
    t0 = time.time()
    while True:
        v = fn()
        if v:
            return time.time() - t0
        if time.time() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.1)


class Replicas(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.base_url = pg_url()
        if not cls.base_url or not os.path.exists(MODEL) or not shutil.which("psql"):
            print("\n*** SKIPPED: needs the test PostgreSQL server (ctest fixture pg), psql and "
                  "../shared/models/stories260K.gguf ***", file=sys.stderr)
            raise unittest.SkipTest("no PostgreSQL server or ../shared")
        cls.schema = f"replicas_{os.getpid()}"
        psql(cls.base_url, f"DROP SCHEMA IF EXISTS {cls.schema} CASCADE; CREATE SCHEMA {cls.schema}")
        cls.url = with_schema(cls.base_url, cls.schema)
        cls.tdir = tempfile.mkdtemp(prefix="alignd_replicas_")

    @classmethod
    def tearDownClass(cls):
        psql(cls.base_url, f"DROP SCHEMA IF EXISTS {cls.schema} CASCADE")

    def replica(self, *flags):
        # notifications, not the minute-long polling, must carry activations
        return H.Daemon("--model", f"stories={MODEL}", f"--store.url={self.url}",
                        f"--training.dir={self.tdir}", "--store.sync_interval_ms=60000", *flags)

    def greedy(self, d, model="stories"):
        out = []
        for pr in P.probe_prompts()[:2]:
            s, _, b = d.json("POST", "/v1/completions", {
                "model": model, "prompt": pr, "max_tokens": 8, "temperature": 0}, timeout=60)
            self.assertEqual(s, 200, b)
            out.append(b["choices"][0]["text"])
        return out

    def run_of(self, d, rid):
        s, _, r = d.json("GET", f"/v1/training/runs/{rid}")
        self.assertEqual(s, 200, r)
        return r

    def feedback_total(self, d):
        s, _, b = d.json("GET", "/v1/feedback/stats")
        self.assertEqual(s, 200, b)
        return b["total"]

    def test_two_replicas(self):
        a = self.replica(*FAST).__enter__()
        b = self.replica(*SLOW).__enter__()
        try:
            self.check(a, b)
        finally:
            for d in (a, b):
                d.__exit__(None, None, None)

    def check(self, a, b):
        # -- the election: the first started trains ---------------------------
        eventually(lambda: metric(a, "alignd_trainer_leader") == 1, "a holds the trainer lock")
        self.assertEqual(metric(b, "alignd_trainer_leader"), 0)

        # -- feedback through either is seen by both ---------------------------
        pairs = P.on_policy_pairs(a, "stories", per_prompt=4)  # enough to promote; light under ASan
        half = len(pairs) // 2
        ids_a = P.post_feedback(a, pairs[:half], model="stories")
        ids_b = P.post_feedback(b, pairs[half:], model="stories")
        self.assertEqual(self.feedback_total(a), len(pairs))
        self.assertEqual(self.feedback_total(b), len(pairs))
        s, _, row = b.json("GET", f"/v1/feedback/{ids_a[0]}")
        self.assertEqual((s, row["prompt"]), (200, pairs[0]["prompt"]), row)
        s, _, row = a.json("GET", f"/v1/feedback/{ids_b[-1]}")
        self.assertEqual((s, row["chosen"]), (200, pairs[-1]["chosen"]), row)

        # -- a run queued through b is run by a ----------------------------------
        base = self.greedy(a)
        self.assertEqual(self.greedy(b), base)
        s, _, run = b.json("POST", "/v1/training/runs", {"kind": "dpo"})
        self.assertEqual(s, 202, run)
        for d in (a, b):
            s, _, busy = d.json("POST", "/v1/training/runs", {"kind": "dpo"})
            self.assertEqual((s, busy["error"]["code"]), (409, "training_busy"), busy)
        t0 = time.time()
        while self.run_of(b, run["id"])["status"] in ("queued", "running"):
            self.assertLess(time.time() - t0, 600, "the run did not end")
            time.sleep(0.2)
        done = self.run_of(b, run["id"])
        self.assertEqual(done["status"], "succeeded", done)
        self.assertTrue(done["metrics"]["promoted"], done["metrics"])
        self.assertIn("run " + run["id"], a.log())  # a ran it
        self.assertNotIn("run " + run["id"] + ": dpo", b.log())

        # -- the activation reaches b through NOTIFY ------------------------------
        adapted = self.greedy(a)
        self.assertNotEqual(adapted, base)
        took = eventually(lambda: self.greedy(b) == adapted, "b serves the new adapter")
        s, _, ads = b.json("GET", "/v1/adapters")
        self.assertEqual([x["status"] for x in ads["data"]], ["active"], ads)
        self.assertEqual(self.greedy(b, "stories:base"), base)
        # rollback through b reaches a
        s, _, r = b.json("POST", "/v1/adapters/base/activate", {"model": "stories"})
        self.assertEqual(s, 200, r)
        self.assertEqual(self.greedy(b), base)
        took_back = eventually(lambda: self.greedy(a) == base, "a serves the base again")
        print(f"\nreplicas: {len(pairs)} pairs; activation seen by the other replica in "
              f"{took:.2f}s, rollback in {took_back:.2f}s", file=sys.stderr)

        # -- the trainer dies: b takes over ------------------------------------------
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        took = eventually(lambda: metric(b, "alignd_trainer_leader") == 1,
                          "b takes the trainer lock")
        print(f"replicas: b took the trainer lock {took:.2f}s after a was killed",
              file=sys.stderr)
        a2 = self.replica(*FAST).__enter__()
        try:
            self.assertEqual(metric(a2, "alignd_trainer_leader"), 0)
            self.assertEqual(self.greedy(a2), base)  # serves the registry's choice
            # -- a run b runs, cancelled through a2 --------------------------------
            s, _, run = a2.json("POST", "/v1/training/runs", {"kind": "dpo"})
            self.assertEqual(s, 202, run)
            t0 = time.time()
            while self.run_of(a2, run["id"])["status"] != "running":
                self.assertLess(time.time() - t0, 120, "b did not start the run")
                time.sleep(0.1)
            s, _, r = a2.json("DELETE", f"/v1/training/runs/{run['id']}")
            self.assertIn(s, (200, 202), r)
            eventually(lambda: self.run_of(a2, run["id"])["status"] == "cancelled",
                       "the run is cancelled by its trainer", timeout=60)
            self.assertEqual(metric(b, "alignd_trainer_leader"), 1)
        finally:
            a2.__exit__(None, None, None)


if __name__ == "__main__":
    H.main(globals())

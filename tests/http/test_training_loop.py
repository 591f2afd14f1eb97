#!/usr/bin/env python3
"""The closed loop end to end on stories260K (../shared/models), with the
real daemon: on-policy synthetic pairs ("happy" preferred, pairs_util.py)
posted through /v1/feedback; POST /v1/training/runs {"kind": "both"} trains
a reward model and a DPO adapter that the gate promotes (version 1 active,
metrics recorded); seeded samples on the plain model name then say "happy"
clearly more often than before; /v1/rewards answers 409 before and scores
after; a second POST while the run is queued/running gets 409; rollback to
the base restores the greedy tokens and log-probs exactly, and activating
the adapter again restores the adapted ones; a restart serves the active
adapter and the run's reward model again (the same scores); a cancelled run ends "cancelled" leaving the active adapter
alone; the automatic trigger (training.min_new_pairs) starts a run, and a
SIGKILL while it runs leaves it "failed" (interrupted) after a restart on
the same store and training dir, with the active adapter unchanged and
still served. The Prometheus series of the loop are checked along the way.

The phases share one store and training dir, so they run in order (one
test method). Skips loudly when ../shared is absent."""
import os
import re
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402
import pairs_util as P  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "..", "..", "shared", "models", "stories260K.gguf")
RUN_TIMEOUT = 900      # seconds for the trained run (CI has 2 cores)
# the run that trains: as `alignd train dpo` does in test_train_dpo.py
FAST = ["--training.epochs=4", "--training.batch=8", "--training.lr=2e-3",
        "--training.lora_targets=q,k,v,o"]
# runs that must still be running when the test cancels or kills them
SLOW = ["--training.epochs=500", "--training.batch=8", "--training.lr=2e-3",
        "--training.lora_targets=q,k,v,o"]


def parse_metrics(text):
    """{(name, ((label, value), ...)): float} of a Prometheus exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        assert m, line
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


class TrainingLoop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(MODEL):
            print("\n*** SKIPPED: ../shared/models/stories260K.gguf is absent ***",
                  file=sys.stderr)
            raise unittest.SkipTest("../shared absent")
        cls.tmp = tempfile.mkdtemp(prefix="alignd_loop_")
        cls.db = os.path.join(cls.tmp, "alignd.db")
        cls.tdir = os.path.join(cls.tmp, "training")

    def daemon(self, *flags):
        # kl_max raised: the synthetic rule is learnt sharply, the exact
        # per-token KL on the eval chosen responses comes out at 1-10 by build
        # (here the gate's accuracy test decides the promotion)
        # the gate's KL and reward-score checks vary with the random
        # train/eval split of a few hundred pairs on a 260K model: this test
        # is about the loop, so only the accuracy check decides here (the
        # reward figures are still recorded; test_training_onpolicy.py
        # covers them)
        return H.Daemon("--model", f"stories={MODEL}", f"--store.path={self.db}",
                        f"--training.dir={self.tdir}", "--training.kl_max=50",
                        "--training.gate_rm_min_accuracy=2", *flags)

    # ---- helpers ---------------------------------------------------------

    def metrics(self, d):
        s, _, b = d.request("GET", "/metrics")
        self.assertEqual(s, 200)
        return parse_metrics(b.decode())

    def metric(self, m, name, **labels):
        key = (name, tuple(sorted(labels.items())))
        self.assertIn(key, m, f"{name}{labels} missing from /metrics")
        return m[key]

    def greedy(self, d, model="stories"):
        """Greedy tokens and log-probs of the probe prompts."""
        out = []
        for pr in P.probe_prompts():
            s, _, b = d.json("POST", "/v1/completions", {
                "model": model, "prompt": pr, "max_tokens": 10, "temperature": 0,
                "logprobs": 1}, timeout=60)
            self.assertEqual(s, 200, b)
            c = b["choices"][0]
            out.append((c["text"], c["logprobs"]["tokens"], c["logprobs"]["token_logprobs"]))
        return out

    def run_get(self, d, rid):
        s, _, r = d.json("GET", f"/v1/training/runs/{rid}")
        self.assertEqual(s, 200, r)
        return r

    def wait_run(self, d, rid, until, timeout):
        t0 = time.time()
        while True:
            r = self.run_get(d, rid)
            if until(r):
                return r
            if r["status"] in ("succeeded", "failed", "cancelled"):
                self.fail(f"run {rid} ended {r['status']}: {r['error']}\n{d.log()[-4000:]}")
            if time.time() - t0 > timeout:
                self.fail(f"run {rid} still {r['status']} after {timeout}s")
            time.sleep(0.2)

    def wait_stepping(self, d, rid, timeout=RUN_TIMEOUT):
        """Waits until run rid is running its optimizer steps."""
        self.wait_run(d, rid, lambda r: r["status"] == "running" and
                      self.metric(self.metrics(d), "alignd_training_step") > 0, timeout)

    def adapters(self, d):
        s, _, b = d.json("GET", "/v1/adapters")
        self.assertEqual(s, 200, b)
        return b["data"]

    def rewards(self, d):
        return d.json("POST", "/v1/rewards", {"model": "stories", "input": [
            {"prompt": P.prompt("Zoe", "ball"), "response": " happy and smiled."},
            {"prompt": P.prompt("Zoe", "ball"), "response": " sad and cried."}]}, timeout=60)

    # ---- the loop ----------------------------------------------------------

    def test_closed_loop(self):
        # -- phase 1: pairs, one "both" run, promotion, rollback -------------
        with self.daemon(*FAST) as d:
            m = self.metrics(d)
            self.assertEqual(self.metric(m, "alignd_adapter_active_version", model="stories"), 0)
            self.assertEqual(self.metric(m, "alignd_training_step"), 0)
            for st in ("succeeded", "failed", "cancelled"):
                self.assertEqual(self.metric(m, "alignd_training_runs_total", status=st), 0)
                self.assertEqual(self.metric(m, "alignd_training_last_run_status", status=st), 0)
            s, _, b = self.rewards(d)
            self.assertEqual((s, b["error"]["code"]), (409, "reward_model_unavailable"), b)

            base_greedy = self.greedy(d)
            self.assertEqual(self.greedy(d, "stories:base"), base_greedy)
            base_share = P.happy_share(d, "stories")

            pairs = P.on_policy_pairs(d, "stories", per_prompt=8)
            self.assertGreaterEqual(len(pairs), 200)
            P.post_feedback(d, pairs, model="stories")
            m = self.metrics(d)
            self.assertEqual(self.metric(m, "alignd_feedback_pairs_since_last_run", model="stories"),
                             len(pairs))

            t0 = time.time()
            s, _, run = d.json("POST", "/v1/training/runs", {"kind": "both"})
            self.assertEqual(s, 202, run)
            self.assertIn(run["status"], ("queued", "running"), run)  # the worker may have begun
            self.assertEqual((run["kind"], run["trigger"]), ("both", "api"))
            s, _, busy = d.json("POST", "/v1/training/runs", {"kind": "dpo"})
            self.assertEqual((s, busy["error"]["code"]), (409, "training_busy"), busy)
            run = self.wait_run(d, run["id"], lambda r: r["status"] == "succeeded", RUN_TIMEOUT)
            run_s = time.time() - t0
            self.assertEqual(run["pairs"], len(pairs))
            self.assertTrue(run["history"], run)
            self.assertIn("reward_model", run["metrics"])
            self.assertTrue(run["metrics"]["promoted"], run["metrics"])

            ads = self.adapters(d)
            self.assertEqual(len(ads), 1, ads)
            ad = ads[0]
            self.assertEqual((ad["version"], ad["status"], ad["run_id"], ad["model"]),
                             (1, "active", run["id"], "stories"), ad)
            self.assertEqual(ad["id"], run["adapter_id"])
            self.assertGreater(ad["metrics"]["eval"]["rewards/accuracies"], 0.5, ad)
            self.assertIn("kl", ad["metrics"])
            self.assertRegex(ad["sha256"], r"^[0-9a-f]{64}$")

            m = self.metrics(d)
            self.assertEqual(self.metric(m, "alignd_adapter_active_version", model="stories"), 1)
            self.assertEqual(self.metric(m, "alignd_training_runs_total", status="succeeded"), 1)
            self.assertEqual(self.metric(m, "alignd_training_last_run_status", status="succeeded"), 1)
            self.assertEqual(self.metric(m, "alignd_training_last_run_status", status="failed"), 0)
            self.assertEqual(self.metric(m, "alignd_training_step"), 0)
            self.assertEqual(self.metric(m, "alignd_feedback_pairs_since_last_run", model="stories"), 0)

            tuned_share = P.happy_share(d, "stories")
            print(f"\nclosed loop: {len(pairs)} pairs, run {run_s:.1f}s, samples saying happy: "
                  f"base {base_share:.2f}, active adapter {tuned_share:.2f}; eval accuracy "
                  f"{ad['metrics']['eval']['rewards/accuracies']:.2f}, KL {ad['metrics']['kl']:.2f}, "
                  f"reward model eval accuracy "
                  f"{run['metrics']['reward_model']['eval_accuracy']:.2f}", file=sys.stderr)
            self.assertGreaterEqual(tuned_share, base_share + 0.3)

            s, _, rw = self.rewards(d)  # the run's reward model serves /v1/rewards
            self.assertEqual(s, 200, rw)
            scores = [x["reward"] for x in rw["data"]]
            self.assertEqual([x["index"] for x in rw["data"]], [0, 1], rw)
            self.assertTrue(all(isinstance(x["reward"], float) for x in rw["data"]), rw)

            adapted = self.greedy(d)
            self.assertNotEqual(adapted, base_greedy)
            self.assertEqual(self.greedy(d, "stories:base"), base_greedy)
            s, _, b = d.json("POST", "/v1/adapters/base/activate", {"model": "stories"})
            self.assertEqual(s, 200, b)
            self.assertEqual(self.greedy(d), base_greedy)  # rollback: exactly the base
            self.assertEqual(self.metric(self.metrics(d), "alignd_adapter_active_version",
                                         model="stories"), 0)
            self.assertEqual(self.adapters(d)[0]["status"], "retired")
            s, _, b = d.json("POST", f"/v1/adapters/{ad['id']}/activate", {})
            self.assertEqual(s, 200, b)
            self.assertEqual(self.greedy(d), adapted)
            self.assertEqual(self.adapters(d)[0]["status"], "active")
            d.stop()

        # -- phase 2: restart serves it again; cancel a slow run --------------
        with self.daemon(*SLOW) as d:
            self.assertEqual(self.greedy(d), adapted)
            s, _, rw = self.rewards(d)  # the reward model is served again (store)
            self.assertEqual(s, 200, rw)
            for got, want in zip([x["reward"] for x in rw["data"]], scores):
                self.assertAlmostEqual(got, want, places=4)
            self.assertEqual(self.metric(self.metrics(d), "alignd_training_last_run_status",
                                         status="succeeded"), 1)
            s, _, run = d.json("POST", "/v1/training/runs", {"kind": "dpo"})
            self.assertEqual(s, 202, run)
            self.wait_stepping(d, run["id"])
            s, _, busy = d.json("POST", "/v1/training/runs", {})
            self.assertEqual((s, busy["error"]["code"]), (409, "training_busy"), busy)
            s, _, c = d.json("DELETE", f"/v1/training/runs/{run['id']}")
            self.assertEqual(s, 200, c)
            r = self.wait_run(d, run["id"], lambda r: r["status"] == "cancelled", 120)
            self.assertIsNone(r["adapter_id"])
            s, _, again = d.json("DELETE", f"/v1/training/runs/{run['id']}")
            self.assertEqual((s, again["error"]["code"]), (409, "run_finished"), again)
            self.assertEqual([(a["id"], a["status"]) for a in self.adapters(d)],
                             [(ad["id"], "active")])
            self.assertEqual(self.greedy(d), adapted)
            m = self.metrics(d)
            self.assertEqual(self.metric(m, "alignd_training_runs_total", status="cancelled"), 1)
            self.assertEqual(self.metric(m, "alignd_training_last_run_status", status="cancelled"), 1)
            self.assertEqual(self.metric(m, "alignd_training_step"), 0)
            self.assertEqual(self.metric(m, "alignd_adapter_active_version", model="stories"), 1)
            d.stop()

        # -- phase 3: the automatic trigger, SIGKILL while it runs -----------
        d = self.daemon(*SLOW, "--training.min_new_pairs=40").__enter__()
        try:
            P.post_feedback(d, pairs[:39], model="stories")
            time.sleep(2.5)  # triggers are polled once a second: 39 < 40 starts nothing
            s, _, lst = d.json("GET", "/v1/training/runs")
            self.assertEqual(len(lst["data"]), 2, lst)
            P.post_feedback(d, pairs[39:40], model="stories")
            t0 = time.time()
            while True:
                lst = d.json("GET", "/v1/training/runs")[2]["data"]
                if len(lst) == 3:
                    break
                self.assertLess(time.time() - t0, 30, "the automatic trigger started no run")
                time.sleep(0.2)
            auto = lst[0]
            self.assertEqual((auto["trigger"], auto["kind"]), ("pairs", "dpo"), auto)
            self.wait_stepping(d, auto["id"])
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()
        finally:
            if d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
            d.stderr_file.close()
        self.assertNotIn("Sanitizer", d.stderr())

        # -- phase 4: restart on the same store and training dir ---------------
        with self.daemon(*FAST) as d:
            r = self.run_get(d, auto["id"])
            self.assertEqual(r["status"], "failed", r)
            self.assertIn("interrupted", r["error"])
            self.assertIsNotNone(r["finished_at"])
            self.assertEqual([(a["id"], a["status"], a["version"]) for a in self.adapters(d)],
                             [(ad["id"], "active", 1)])
            self.assertEqual(self.greedy(d), adapted)
            m = self.metrics(d)
            self.assertEqual(self.metric(m, "alignd_adapter_active_version", model="stories"), 1)
            self.assertEqual(self.metric(m, "alignd_training_last_run_status", status="failed"), 1)
            self.assertEqual(self.metric(m, "alignd_training_runs_total", status="failed"), 0)
            self.assertEqual(self.metric(m, "alignd_feedback_pairs_since_last_run",
                                         model="stories"), 0)
            s, _, lst = d.json("GET", "/v1/training/runs")
            self.assertEqual([x["status"] for x in lst["data"]],
                             ["failed", "cancelled", "succeeded"], lst)
            d.stop()


if __name__ == "__main__":
    H.main(globals())

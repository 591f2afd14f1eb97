#!/usr/bin/env python3
"""The closed loop with training.onpolicy on stories260K (../shared/models):
synthetic pairs ("happy" preferred, pairs_util.py) through /v1/feedback,
then one "both" run: the reward model it trains labels k seeded samples
per train prompt of the current policy (the base here), the best and worst
of each become "onpolicy" pairs mixed with the human ones, and the gate
compares the reward model's mean score of greedy samples of the new
adapter and of the active one (the base). The run succeeds and records
pairs/human, pairs/onpolicy > 0, gate/reward_new and gate/reward_active in
its metrics and the adapter's; a promotion implies reward_new >=
reward_active, a refusal on rewards is recorded as the adapter's reason.
Skips loudly when ../shared is absent."""
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402
import pairs_util as P  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "..", "..", "shared", "models", "stories260K.gguf")
RUN_TIMEOUT = 900  # seconds (CI has 2 cores, and ASan)


class TrainingOnPolicy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(MODEL):
            print("\n*** SKIPPED: ../shared/models/stories260K.gguf is absent ***",
                  file=sys.stderr)
            raise unittest.SkipTest("../shared absent")
        cls.tmp = tempfile.mkdtemp(prefix="alignd_onpolicy_")

    def test_onpolicy_both_run(self):
        with H.Daemon("--model", f"stories={MODEL}",
                      f"--store.path={os.path.join(self.tmp, 'alignd.db')}",
                      f"--training.dir={os.path.join(self.tmp, 'training')}",
                      "--training.kl_max=50", "--training.epochs=3", "--training.batch=8",
                      "--training.lr=2e-3", "--training.lora_targets=q,k,v,o",
                      "--training.onpolicy=true", "--training.onpolicy_k=4",
                      "--training.onpolicy_prompts=16", "--training.onpolicy_ratio=0.5",
                      "--training.onpolicy_min_gap=0.05") as d:
            pairs = P.on_policy_pairs(d, "stories", per_prompt=4)
            self.assertGreaterEqual(len(pairs), 80)
            P.post_feedback(d, pairs, model="stories")

            t0 = time.time()
            s, _, run = d.json("POST", "/v1/training/runs", {"kind": "both"})
            self.assertEqual(s, 202, run)
            while True:
                s, _, run = d.json("GET", f"/v1/training/runs/{run['id']}")
                self.assertEqual(s, 200, run)
                if run["status"] in ("succeeded", "failed", "cancelled"):
                    break
                self.assertLess(time.time() - t0, RUN_TIMEOUT, "the run did not end")
                time.sleep(0.2)
            run_s = time.time() - t0
            self.assertEqual(run["status"], "succeeded", f"{run['error']}\n{d.log()[-4000:]}")
            self.assertTrue(run["config"]["onpolicy"], run["config"])
            m = run["metrics"]
            self.assertIn("reward_model", m)
            self.assertEqual(run["pairs"], len(pairs))  # the human pairs; the store splits them
            self.assertGreater(m["pairs/human"], 0, m)
            self.assertLess(m["pairs/human"], len(pairs), m)  # the train split
            self.assertGreater(m["pairs/onpolicy"], 0, m)
            self.assertLessEqual(m["pairs/onpolicy"], m["pairs/human"], m)  # ratio 0.5
            self.assertLessEqual(m["onpolicy"]["prompts"], 16, m)
            for k in ("gate/reward_new", "gate/reward_active"):
                self.assertIsInstance(m[k], float, m)
            self.assertGreater(m["gate/reward_prompts"], 0, m)

            s, _, ads = d.json("GET", "/v1/adapters")
            self.assertEqual(s, 200, ads)
            ad = ads["data"][0]
            self.assertEqual(ad["id"], run["adapter_id"])
            self.assertEqual(ad["metrics"]["gate/reward_new"], m["gate/reward_new"])
            self.assertEqual(ad["metrics"]["pairs/onpolicy"], m["pairs/onpolicy"])
            # the reward scores veto only with a reward model this run
            # trained to training.gate_rm_min_accuracy (else advisory)
            rm_acc = m["reward_model"]["eval_accuracy"]
            self.assertEqual(m["gate/reward_binding"], rm_acc >= 0.8, m)
            if m["promoted"]:
                if m["gate/reward_binding"]:
                    self.assertGreaterEqual(m["gate/reward_new"], m["gate/reward_active"], m)
                self.assertEqual(ad["status"], "active", ad)
            elif m["gate/reward_binding"] and m["gate/reward_new"] < m["gate/reward_active"]:
                self.assertIn("reward-model score", ad.get("reason") or "", ad)
            print(f"\non-policy run: {len(pairs)} human pairs ({m['pairs/human']} train), "
                  f"{m['pairs/onpolicy']} on-policy pairs from {m['onpolicy']['prompts']} prompts "
                  f"(mean gap {m['onpolicy']['mean_gap']:.3f}, {m['onpolicy']['ms']} ms), "
                  f"gate reward new {m['gate/reward_new']:.3f} vs active "
                  f"{m['gate/reward_active']:.3f} ({m['gate/reward_ms']} ms), promoted "
                  f"{m['promoted']}, run {run_s:.1f}s", file=sys.stderr)
            self.assertNotIn("Sanitizer", d.stderr())
            d.stop()


if __name__ == "__main__":
    H.main(globals())

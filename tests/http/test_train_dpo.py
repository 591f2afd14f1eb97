#!/usr/bin/env python3
"""`alignd train dpo` end to end on stories260K (../shared/models): pairs
from a TRL JSONL file and from the feedback store (filled through the
daemon's /v1/feedback API), a short run whose held-out implicit-reward
accuracy reaches 0.9, the adapter written in PEFT's format (config keys,
tensor names and shapes read back with the standard library), progress
lines with TRL's metric names, and clear errors for bad input. Then the
adapter in serving: a fresh daemon serves it per request and another one
merged into the weights, with the same greedy tokens and log-probs; seeded
samples from the adapter say "happy" clearly more often than the base
model's; and a reward model trained on the same pairs reaches 0.9 held-out
accuracy. Skips loudly when ../shared is absent."""
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402
import pairs_util as P  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "..", "..", "shared", "models", "stories260K.gguf")
NAMES, THINGS = P.NAMES, P.THINGS
GOOD = ["happy and played all day.", "very happy.", "happy and smiled."]
BAD = ["sad and cried all day.", "very sad.", "scared and ran away.", "angry and sad."]


def pairs():
    out = []
    for i, n in enumerate(NAMES):
        for j, t in enumerate(THINGS):
            out.append({"prompt": f"Once upon a time, {n} found a {t}. {n} felt",
                        "chosen": GOOD[(i + j) % 3], "rejected": BAD[(i + j) % 4],
                        "split": "eval" if i >= 8 else "train"})
    return out


def train(*args, check=True):
    p = subprocess.run([H.BINARY, "train", "dpo", *args], capture_output=True, text=True,
                       timeout=900)
    if check and p.returncode != 0:
        raise AssertionError(f"alignd train dpo failed ({p.returncode}): {p.stderr}")
    return p


def safetensors_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


class TrainDpo(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(MODEL):
            print("\n*** SKIPPED: ../shared/models/stories260K.gguf is absent ***",
                  file=sys.stderr)
            raise unittest.SkipTest("../shared absent")
        cls.tmp = tempfile.mkdtemp(prefix="alignd_dpo_")
        cls.data = os.path.join(cls.tmp, "pairs.jsonl")
        with open(cls.data, "w") as f:
            for p in pairs():
                f.write(json.dumps(p) + "\n")

    @classmethod
    def on_policy_pairs(cls):
        """The synthetic preference rule on the base model's own samples
        (pairs_util.on_policy_pairs: "happy" preferred), as a JSONL file."""
        path = os.path.join(cls.tmp, "on_policy.jsonl")
        if not os.path.exists(path):
            with H.Daemon("--model", f"stories={MODEL}") as d:
                P.write_jsonl(path, P.on_policy_pairs(d, "stories"))
        return path

    @classmethod
    def adapter(cls):
        """Trains the on-policy run once (shared by the tests that need it)."""
        if not hasattr(cls, "_dpo_run"):
            out = os.path.join(cls.tmp, "adapter")
            p = train("-m", MODEL, "--data", cls.on_policy_pairs(), "-o", out, "--epochs", "4",
                      "--batch", "8", "--lr", "2e-3", "--lora-targets", "q,k,v,o",
                      "--rpo-alpha", "1",
                      "--log-every", "5", "--no-eos", "--json")
            cls._dpo_run = (out, p, json.loads(p.stdout.strip().splitlines()[-1]))
        return cls._dpo_run

    def test_jsonl_run_and_peft_files(self):
        out, p, r = self.adapter()
        self.assertGreaterEqual(r["eval_pairs"], 10)
        self.assertGreaterEqual(r["eval"]["rewards/accuracies"], 0.9, p.stderr)
        # the DPO part of the loss (the total adds rpo_alpha 1 x nll_loss): below ln 2
        self.assertLess(r["eval"]["loss"] - r["eval"]["nll_loss"], 0.6931, p.stderr)
        for name in ("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies",
                     "rewards/margins", "logps/chosen", "logps/rejected", "nll_loss", "ETA",
                     "pairs/s"):
            self.assertIn(name, p.stderr)
        with open(os.path.join(out, "adapter_config.json")) as f:
            cfg = json.load(f)
        self.assertEqual(cfg["peft_type"], "LORA")
        self.assertEqual(cfg["r"], 8)
        self.assertEqual(cfg["lora_alpha"], 16)
        self.assertEqual(sorted(cfg["target_modules"]),
                         ["k_proj", "o_proj", "q_proj", "v_proj"])
        hdr = safetensors_header(os.path.join(out, "adapter_model.safetensors"))
        key = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
        self.assertIn(key, hdr)
        self.assertEqual(hdr[key]["shape"][0], 8)
        self.assertEqual(hdr[key.replace("lora_A", "lora_B")]["shape"][1], 8)

    def complete(self, d, model, prompt, **kw):
        body = {"model": model, "prompt": prompt, "max_tokens": 8, "temperature": 0,
                "logprobs": 1, **kw}
        status, _, b = d.json("POST", "/v1/completions", body, timeout=60)
        self.assertEqual(status, 200, b)
        c = b["choices"][0]
        return c["text"], (c.get("logprobs") or {}).get("token_logprobs")

    def test_serving_merged_and_sampling(self):
        out, _, _ = self.adapter()
        prompts = [f"Once upon a time, {n} found a {t}. {n} felt"
                   for n, t in (("Zoe", "ball"), ("Tim", "cake"), ("Kim", "kite"))]
        with H.Daemon("--model", f"stories={MODEL}",
                      f"--model.stories.adapters=happy={out}") as a, \
             H.Daemon("--model", f"stories={MODEL}",
                      f"--model.stories.merge_adapter={out}") as m:
            for pr in prompts:
                ta, la = self.complete(a, "stories:happy", pr)
                tm, lm = self.complete(m, "stories", pr)
                self.assertEqual(ta, tm)
                for x, y in zip(la, lm):
                    self.assertAlmostEqual(x, y, delta=1e-3)
                self.assertEqual(self.complete(a, "stories", pr, adapter="happy")[0], ta)
            # seeded samples: the property the pairs preferred
            base = P.happy_share(a, "stories", seeds=24, prompts=prompts)
            tuned = P.happy_share(a, "stories:happy", seeds=24, prompts=prompts)
            print(f"\nsamples saying happy: base {base:.2f}, adapter {tuned:.2f}",
                  file=sys.stderr)
            self.assertGreaterEqual(tuned, base + 0.3)
        # a fresh process serving the same folder answers the same
        with H.Daemon("--model", f"stories={MODEL}",
                      f"--model.stories.adapters=happy={out}") as b:
            self.assertEqual(self.complete(b, "stories:happy", prompts[0])[0],
                             self.complete(b, "stories:happy", prompts[0])[0])

    def test_reward_model_same_pairs(self):
        out = os.path.join(self.tmp, "rm")
        p = subprocess.run([H.BINARY, "train", "reward", "-m", MODEL, "--data",
                            self.on_policy_pairs(),
                            "-o", out, "--epochs", "3", "--lr", "3e-3", "--json"],
                           capture_output=True, text=True, timeout=900)
        self.assertEqual(p.returncode, 0, p.stderr)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        self.assertGreaterEqual(r["eval_accuracy"], 0.9, p.stderr)

    def test_from_store(self):
        with H.Daemon() as d:
            items = [{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]}
                     for p in pairs()]
            status, _, body = d.json("POST", "/v1/feedback", items)
            self.assertIn(status, (200, 201), body)
            db = os.path.join(d.tmp, "alignd.db")
            d.stop()
            out = os.path.join(self.tmp, "adapter_store")
            p = train("-m", MODEL, "--store", db, "-o", out, "--max-steps", "3", "--json")
            r = json.loads(p.stdout.strip().splitlines()[-1])
            self.assertEqual(r["pairs"], len(items))
            self.assertEqual(r["steps"], 3)
            self.assertTrue(os.path.exists(os.path.join(out, "adapter_config.json")))

    def test_errors(self):
        out = os.path.join(self.tmp, "never")
        p = train("-m", MODEL, "-o", out, check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage", p.stderr)
        p = train("-m", MODEL, "--data", self.data, "-o", out, "--loss", "kto", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--loss", p.stderr)
        p = train("-m", MODEL, "--data", self.data, "-o", out, "--beta", "0", check=False)
        self.assertEqual(p.returncode, 2)
        bad = os.path.join(self.tmp, "bad.jsonl")
        with open(bad, "w") as f:
            f.write(json.dumps(pairs()[0]) + "\n{\"prompt\": 3}\n")
        p = train("-m", MODEL, "--data", bad, "-o", out, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("line 2", p.stderr)
        p = train("-m", MODEL, "--data", self.data, "-o", out, "--lora-targets", "q,zz",
                  check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("zz", p.stderr)
        self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    H.main(globals())

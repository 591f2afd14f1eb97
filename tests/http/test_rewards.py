#!/usr/bin/env python3
"""Reward models end to end: `alignd train reward` learns a generated
preference task on ../shared/conformance/gpt2-tiny (chosen responses contain
"great", rejected ones a neutral word in its place), the daemon serves it
through the model's reward_model key, and POST /v1/rewards ranks unseen
chosen-style responses above rejected-style ones in both request shapes
(pairs, and OpenRLHF's {"query": [...]}); a model without a reward model is
409, bad bodies 400/422 naming the field. Skips loudly without ../shared."""
import json
import os
import random
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared")
GPT2 = os.path.join(SHARED, "conformance", "gpt2-tiny")
WORDS = ("the a blue house runs slowly over river today small cat green book is near door "
         "tree walks under light").split()


def gen_pairs(n, seed):
    """Pairs that differ in one word: "great" in chosen, a neutral one in rejected."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        prompt = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(3, 6)))
        words = [rnd.choice(WORDS) for _ in range(rnd.randint(3, 7))]
        at = rnd.randrange(len(words))
        chosen, rejected = list(words), list(words)
        chosen[at], rejected[at] = "great", WORDS[i % len(WORDS)]
        out.append({"prompt": prompt, "chosen": " ".join(chosen), "rejected": " ".join(rejected)})
    return out


def train(*args):
    return subprocess.run([H.BINARY, "train", "reward", *args], capture_output=True, text=True,
                          timeout=600)


def train_great_rm(prefix):
    """Skips loudly without ../shared; else trains the "great" reward model
    on gpt2-tiny in a new temp folder. Returns (tmp, rm_dir, process)."""
    if not os.path.isdir(GPT2):
        print("\n*** SKIPPED: ../shared/conformance/gpt2-tiny is absent ***", file=sys.stderr)
        raise unittest.SkipTest("../shared absent")
    tmp = tempfile.mkdtemp(prefix=prefix)
    data = os.path.join(tmp, "pairs.jsonl")
    with open(data, "w") as f:
        for p in gen_pairs(300, 1):
            f.write(json.dumps(p) + "\n")
    rm = os.path.join(tmp, "rm")
    p = train("-m", GPT2, "--data", data, "-o", rm, "--epochs", "4", "--batch", "16",
              "--lr", "3e-3", "--json")
    if p.returncode != 0:
        raise AssertionError(f"alignd train reward failed ({p.returncode}): {p.stderr}")
    return tmp, rm, p


class Rewards(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp, cls.rm, p = train_great_rm("alignd_rewards_")
        cls.stderr = p.stderr
        cls.result = json.loads(p.stdout.strip().splitlines()[-1])
        cls.d = H.Daemon("--model", f"rm={GPT2}", f"--model.rm.reward_model={cls.rm}",
                         "--model", f"plain={GPT2}").__enter__()

    @classmethod
    def tearDownClass(cls):
        if hasattr(cls, "d"):
            cls.d.__exit__(None, None, None)

    def rewards(self, body):
        return self.d.json("POST", "/v1/rewards", body, timeout=60)

    def test_training_figures(self):
        r = self.result
        self.assertGreaterEqual(r["eval_accuracy"], 0.9, self.stderr)
        self.assertGreater(r["eval_pairs"], 0)
        self.assertEqual(r["train_pairs"] + r["eval_pairs"], 300)
        for word in ("step ", "loss", "accuracy", "lr", "pairs/s", "ETA", "eval accuracy"):
            self.assertIn(word, self.stderr)
        files = set(os.listdir(self.rm))
        self.assertTrue({"reward_config.json", "reward_head.safetensors", "adapter_config.json",
                         "adapter_model.safetensors"} <= files, files)

    def test_pairs_rank_chosen_higher(self):
        pairs = gen_pairs(40, 99)  # unseen
        inputs = []
        for p in pairs:
            inputs += [{"prompt": p["prompt"], "response": p["chosen"]},
                       {"prompt": p["prompt"], "response": p["rejected"]}]
        s, _, b = self.rewards({"model": "rm", "input": inputs})
        self.assertEqual(s, 200, b)
        self.assertEqual((b["object"], b["model"]), ("list", "rm"))
        self.assertEqual([e["index"] for e in b["data"]], list(range(80)))
        self.assertGreater(b["usage"]["prompt_tokens"], 80)
        r = [e["reward"] for e in b["data"]]
        right = sum(r[2 * i] > r[2 * i + 1] for i in range(40))
        self.assertGreaterEqual(right, 36, r)
        # "model" may be left out: only rm has a reward model; same scores,
        # and one input alone scores as it does in the batch
        s, _, one = self.rewards({"input": inputs[3:4]})
        self.assertEqual(s, 200, one)
        self.assertAlmostEqual(one["data"][0]["reward"], r[3], places=4)

    def test_openrlhf_query_shape(self):
        pairs = gen_pairs(20, 7)
        queries = []
        for p in pairs:
            queries += [p["prompt"] + " " + p["chosen"], p["prompt"] + " " + p["rejected"]]
        s, _, b = self.rewards({"query": queries})
        self.assertEqual(s, 200, b)
        self.assertEqual(list(b), ["rewards"])
        r = b["rewards"]
        self.assertEqual(len(r), 40)
        self.assertTrue(all(isinstance(x, float) for x in r))
        self.assertGreaterEqual(sum(r[2 * i] > r[2 * i + 1] for i in range(20)), 17, r)
        # a trailing EOS text is dropped before the EOS token is appended
        s, _, b2 = self.rewards({"query": [queries[0] + "<|endoftext|>"]})
        self.assertAlmostEqual(b2["rewards"][0], r[0], places=4)

    def test_errors(self):
        ok = [{"prompt": "a", "response": "b"}]
        cases = [
            ({"model": "plain", "input": ok}, 409, "model", "reward_model_unavailable"),
            ({"model": "nope", "input": ok}, 404, "model", "model_not_found"),
            ({"model": 3, "input": ok}, 400, "model", None),
            ({"model": "rm"}, 400, "input", None),
            ({"input": []}, 400, "input", None),
            ({"input": "text"}, 400, "input", None),
            ({"input": [3]}, 400, "input", None),
            ({"input": [{"prompt": "a"}]}, 400, "input", None),
            ({"input": [{"prompt": "a", "response": ""}]}, 400, "input", None),
            ({"input": ok, "query": ["x"]}, 400, "query", None),
            ({"query": ["x", ""]}, 400, "query", None),
            # gpt2-tiny has no chat template: messages cannot be rendered
            ({"input": [{"messages": [{"role": "user", "content": "hi"},
                                      {"role": "assistant", "content": "great"}]}]},
             422, "input", None),
            ({"input": [{"messages": [{"role": "user", "content": "hi"}]}]}, 400, "input", None),
        ]
        for body, status, param, code in cases:
            s, _, b = self.rewards(body)
            self.assertEqual((s, b["error"]["param"]), (status, param), (body, b))
            if code:
                self.assertEqual(b["error"]["code"], code)
        s, _, b = self.rewards({"model": "plain", "input": ok})
        self.assertIn("alignd train reward", b["error"]["message"])
        s, _, b = self.rewards({"input": [{"messages": [{"role": "user", "content": "hi"},
                                                        {"role": "assistant", "content": "x"}]}]})
        self.assertIn("input[0]", b["error"]["message"])
        s, _, b = self.d.request("POST", "/v1/rewards", b"{", {"Content-Type": "application/json"})
        self.assertEqual(s, 400)

    def test_no_reward_model_anywhere(self):
        with H.Daemon("--model", f"plain={GPT2}") as d:
            s, _, b = d.json("POST", "/v1/rewards", {"input": [{"prompt": "a", "response": "b"}]})
            self.assertEqual((s, b["error"]["code"]), (409, "reward_model_unavailable"), b)
            self.assertIn("no served model has a reward model", b["error"]["message"])

    def test_clean_shutdown(self):
        # scores, then SIGTERM: exit 0 (under ASan: no leak of the reward model)
        with H.Daemon("--model", f"rm={GPT2}", f"--model.rm.reward_model={self.rm}") as d:
            s, _, b = d.json("POST", "/v1/rewards", {"query": ["a b c", "great"]})
            self.assertEqual((s, len(b["rewards"])), (200, 2), b)
            self.assertEqual(d.stop(), 0, d.stderr())

    def test_bad_reward_model_stops_start_up(self):
        p = subprocess.run([H.BINARY, f"--server.port={H.free_port()}",
                            f"--store.path={os.path.join(self.tmp, 'x.db')}", "--model",
                            f"x={GPT2}", f"--model.x.reward_model={self.tmp}/missing"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("model 'x': reward_model", p.stderr)
        self.assertIn("missing/reward_config.json", p.stderr)

    def test_train_usage(self):
        p = train("-m", GPT2, "-o", os.path.join(self.tmp, "x"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("--data or --store", p.stderr)
        p = train("-m", GPT2, "--data", os.path.join(self.tmp, "none.jsonl"), "-o",
                  os.path.join(self.tmp, "x"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("none.jsonl", p.stderr)


if __name__ == "__main__":
    H.main(globals())

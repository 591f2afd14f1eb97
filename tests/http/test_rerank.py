#!/usr/bin/env python3
"""best_of / n reranked by the reward model ("rerank": "reward") end to end:
`alignd train reward` learns to prefer responses that contain "great" on
../shared/conformance/gpt2-tiny (the pairs of test_rewards.py); the daemon
serves it as the model's reward_model. A seeded best_of=8 n=1 rerank=reward
completion returns, of the 8 candidates the same seed's best_of=8 n=8
request returns, the one /v1/rewards scores highest, with that reward;
choices carry rewards sorted best first; with "great" made likely, the
reranked choice says "great" whenever a candidate does. Chat reranks its n
choices the same way (the messages form of /v1/rewards). Errors: no reward
model 409, stream 400, an unknown value 422 naming the field. Skips loudly
without ../shared."""
import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402
from test_rewards import GPT2, train_great_rm  # noqa: E402

GREAT = 1049  # " great" in GPT-2's vocabulary
PROMPT = "the blue house runs"


class Rerank(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp, cls.rm, _ = train_great_rm("alignd_rerank_")
        # gpt2-tiny has no chat template of its own: chatml for the chat tests
        cls.d = H.Daemon("--model", f"rm={GPT2}", f"--model.rm.reward_model={cls.rm}",
                         "--model.rm.chat_template=chatml", "--model", f"plain={GPT2}").__enter__()

    @classmethod
    def tearDownClass(cls):
        if hasattr(cls, "d"):
            cls.d.__exit__(None, None, None)
        if hasattr(cls, "tmp"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def complete(self, **kw):
        body = {"model": "rm", "prompt": PROMPT, "max_tokens": 6, **kw}
        s, _, b = self.d.json("POST", "/v1/completions", body, timeout=60)
        self.assertEqual(s, 200, (body, b))
        return b

    def scores(self, prompt, texts):
        s, _, b = self.d.json("POST", "/v1/rewards", {"model": "rm", "input": [
            {"prompt": prompt, "response": t} for t in texts]}, timeout=60)
        self.assertEqual(s, 200, b)
        return [e["reward"] for e in b["data"]]

    def assert_sorted_rewards(self, choices):
        r = [c["reward"] for c in choices]
        self.assertTrue(all(isinstance(x, float) for x in r), r)
        self.assertEqual(r, sorted(r, reverse=True), r)
        self.assertEqual([c["index"] for c in choices], list(range(len(choices))))

    def test_best_of_returns_the_highest_reward(self):
        for seed in (3, 40, 500):
            every = self.complete(best_of=8, n=8, seed=seed)["choices"]  # index order
            texts = [c["text"] for c in every]
            self.assertNotIn("reward", every[0])
            r = self.scores(PROMPT, texts)
            self.assertGreater(len(set(texts)), 1, texts)
            best = max(range(8), key=lambda i: r[i])
            one = self.complete(best_of=8, n=1, seed=seed, rerank="reward")
            self.assertEqual(len(one["choices"]), 1, one)
            c = one["choices"][0]
            self.assertEqual((c["index"], c["text"]), (0, texts[best]), (texts, r))
            self.assertAlmostEqual(c["reward"], r[best], places=4)
            # every candidate is generated, whatever is returned
            self.assertEqual(one["usage"], self.complete(best_of=8, n=8, seed=seed)["usage"])
            # n=3: the three best, best first; n=8: all of them
            top = self.complete(best_of=8, n=3, seed=seed, rerank="reward")["choices"]
            self.assert_sorted_rewards(top)
            order = sorted(range(8), key=lambda i: -r[i])
            self.assertEqual([c["text"] for c in top], [texts[i] for i in order[:3]])
            full = self.complete(best_of=8, n=8, seed=seed, rerank="reward")["choices"]
            self.assert_sorted_rewards(full)
            self.assertEqual(sorted(c["text"] for c in full), sorted(texts))
            for c in full:
                self.assertAlmostEqual(c["reward"], r[texts.index(c["text"])], places=4)

    def test_the_preferred_property_wins(self):
        # " great" made likely enough that some candidates say it, not all
        mixed = 0
        for seed in range(0, 1200, 100):
            ch = self.complete(best_of=8, n=8, seed=seed, rerank="reward",
                               logit_bias={str(GREAT): 9})["choices"]
            said = ["great" in c["text"] for c in ch]
            if any(said) and not all(said):
                mixed += 1
                self.assertTrue(said[0], [(c["text"], c["reward"]) for c in ch])
        self.assertGreaterEqual(mixed, 3)  # 8 of the 12 seeds when written

    def test_n_without_best_of_and_the_default(self):
        plain = self.complete(n=4, seed=7)["choices"]
        by_lp = self.complete(n=4, seed=7, rerank="logprob")["choices"]
        self.assertEqual([c["text"] for c in plain], [c["text"] for c in by_lp])
        self.assertTrue(all("reward" not in c for c in plain + by_lp))
        ranked = self.complete(n=4, seed=7, rerank="reward")["choices"]
        self.assert_sorted_rewards(ranked)
        self.assertEqual(sorted(c["text"] for c in ranked), sorted(c["text"] for c in plain))
        null = self.complete(n=2, seed=7, rerank=None)["choices"]  # null: the default
        self.assertEqual([c["text"] for c in null], [c["text"] for c in plain[:2]])

    def test_several_prompts_echo_and_token_prompts(self):
        a, b = PROMPT, "small cat near door"
        both = self.complete(prompt=[a, b], best_of=4, n=2, seed=11, rerank="reward")["choices"]
        self.assertEqual(len(both), 4)
        self.assertEqual([c["index"] for c in both], [0, 1, 2, 3])
        for i, p in enumerate((a, b)):  # each prompt's own two best, in prompt order
            alone = self.complete(prompt=p, best_of=4, n=2, seed=11, rerank="reward")["choices"]
            self.assertEqual([c["text"] for c in both[2 * i:2 * i + 2]], [c["text"] for c in alone])
            for x, y in zip(both[2 * i:2 * i + 2], alone):
                self.assertAlmostEqual(x["reward"], y["reward"], places=4)
        # echo: the text starts with the prompt; the candidate alone is scored
        plain = self.complete(best_of=4, n=1, seed=12, rerank="reward")["choices"][0]
        echo = self.complete(best_of=4, n=1, seed=12, rerank="reward", echo=True)["choices"][0]
        self.assertEqual(echo["text"], PROMPT + plain["text"])
        self.assertAlmostEqual(echo["reward"], plain["reward"], places=4)
        # a prompt of token ids is scored with its text
        s, _, t = self.d.json("POST", "/tokenize", {"model": "rm", "content": PROMPT})
        self.assertEqual(s, 200, t)
        ids = self.complete(prompt=t["tokens"], best_of=4, n=1, seed=12, rerank="reward")["choices"][0]
        self.assertEqual(ids["text"], plain["text"])
        self.assertAlmostEqual(ids["reward"], plain["reward"], places=4)

    def test_chat(self):
        msgs = [{"role": "system", "content": "be kind"},
                {"role": "user", "content": [{"type": "text", "text": "the small "},
                                             {"type": "text", "text": "cat"}]}]
        body = {"model": "rm", "messages": msgs, "n": 4, "max_tokens": 5, "seed": 21}
        s, _, plain = self.d.json("POST", "/v1/chat/completions", body, timeout=60)
        self.assertEqual(s, 200, plain)
        s, _, b = self.d.json("POST", "/v1/chat/completions", {**body, "rerank": "reward"},
                              timeout=60)
        self.assertEqual(s, 200, b)
        self.assertEqual(b["object"], "chat.completion")
        ch = b["choices"]
        self.assert_sorted_rewards(ch)
        texts = [c["message"]["content"] for c in ch]
        self.assertEqual(sorted(texts), sorted(c["message"]["content"] for c in plain["choices"]))
        # as /v1/rewards scores the conversation (content parts joined)
        flat = [msgs[0], {"role": "user", "content": "the small cat"}]
        s, _, r = self.d.json("POST", "/v1/rewards", {"model": "rm", "input": [
            {"prompt": flat, "response": [{"role": "assistant", "content": t}]} for t in texts]})
        self.assertEqual(s, 200, r)
        for c, e in zip(ch, r["data"]):
            self.assertAlmostEqual(c["reward"], e["reward"], places=4)
        # more messages than the reward model's tokenization takes: 422 before generating
        many = [{"role": "user" if i % 2 == 0 else "assistant", "content": "hi"} for i in range(71)]
        s, _, e = self.d.json("POST", "/v1/chat/completions",
                              {"model": "rm", "messages": many, "rerank": "reward", "max_tokens": 2})
        self.assertEqual((s, e["error"]["param"]), (422, "messages"), e)
        self.assertIn("rerank", e["error"]["message"])

    def test_errors(self):
        ok = {"prompt": "a", "max_tokens": 2}
        cases = [
            ("/v1/completions", {"model": "plain", **ok, "rerank": "reward"}, 409, "reward_model_unavailable"),
            ("/v1/completions", {"model": "rm", **ok, "rerank": "reward", "stream": True}, 400, None),
            ("/v1/completions", {"model": "rm", **ok, "n": 2, "rerank": "reward", "stream": True}, 400, None),
            ("/v1/completions", {"model": "rm", **ok, "rerank": "best"}, 422, "invalid_value"),
            ("/v1/completions", {"model": "rm", **ok, "rerank": 1}, 400, None),
            ("/v1/completions", {"model": "rm", **ok, "rerank": ["reward"]}, 400, None),
            ("/v1/chat/completions", {"model": "plain", "messages": [{"role": "user", "content": "hi"}],
                                      "rerank": "reward"}, 409, "reward_model_unavailable"),
            ("/v1/chat/completions", {"model": "rm", "messages": [{"role": "user", "content": "hi"}],
                                      "rerank": "reward", "stream": True}, 400, None),
            ("/v1/chat/completions", {"model": "rm", "messages": [{"role": "user", "content": "hi"}],
                                      "rerank": "REWARD"}, 422, "invalid_value"),
        ]
        for path, body, status, code in cases:
            s, _, b = self.d.json("POST", path, body)
            self.assertEqual((s, b["error"]["param"]), (status, "rerank"), (path, body, b))
            if code:
                self.assertEqual(b["error"]["code"], code)
        s, _, b = self.d.json("POST", "/v1/completions", {"model": "plain", **ok, "rerank": "reward"})
        self.assertIn("alignd train reward", b["error"]["message"])
        # the default needs no reward model
        s, _, b = self.d.json("POST", "/v1/completions", {"model": "plain", **ok, "rerank": "logprob"})
        self.assertEqual(s, 200, b)

    def test_clean_shutdown(self):
        # reranks (and refuses), then SIGTERM: exit 0 (under ASan: nothing leaked)
        with H.Daemon("--model", f"rm={GPT2}", f"--model.rm.reward_model={self.rm}",
                      "--model.rm.chat_template=chatml") as d:
            s, _, b = d.json("POST", "/v1/completions", {"model": "rm", "prompt": ["a b", "c"], "max_tokens": 3,
                                                         "best_of": 3, "rerank": "reward", "seed": 1,
                                                         "echo": True}, timeout=60)
            self.assertEqual((s, len(b["choices"])), (200, 2), b)
            hi = [{"role": "user", "content": "hi"}]
            s, _, b = d.json("POST", "/v1/chat/completions", {"model": "rm", "messages": hi, "n": 2,
                                                              "max_tokens": 3, "rerank": "reward"}, timeout=60)
            self.assertEqual((s, len(b["choices"])), (200, 2), b)
            s, _, b = d.json("POST", "/v1/chat/completions", {"model": "rm", "messages": hi * 70,
                                                              "rerank": "reward"})
            self.assertEqual(s, 422, b)
            s, _, b = d.json("POST", "/v1/chat/completions", {"model": "rm", "messages": hi, "max_tokens": 512,
                                                              "rerank": "reward"})  # past the context
            self.assertEqual(s, 400, b)
            self.assertEqual(d.stop(), 0, d.stderr())


if __name__ == "__main__":
    H.main(globals())

#!/usr/bin/env python3
"""Serving tests: /v1/completions, /v1/chat/completions, /tokenize and
/detokenize against the real daemon serving stories260K (a real pretrained
LLaMA model, ../shared/models), checked against llama.cpp's reference.
"""
import concurrent.futures
import json
import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared")
MODEL = os.path.join(SHARED, "models", "stories260K.gguf")
REF_PATH = os.path.join(SHARED, "models", "stories260K.reference.json")
JSON_CT = {"Content-Type": "application/json"}


def stories(*flags):
    return H.Daemon(f"--model", f"stories={MODEL}", "--model.stories.n_ctx=256", *flags)


def sse_events(raw):
    out = []
    for block in raw.decode().split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            data = block[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def metric(text, name, model="stories"):
    m = re.search(r"^%s\{model=\"%s\"\} (\d+)$" % (re.escape(name), model), text, re.M)
    return int(m.group(1)) if m else None


class Serving(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(MODEL):
            print("\n*** SKIPPED: ../shared/models/stories260K.gguf is absent ***", file=sys.stderr)
            raise unittest.SkipTest("../shared absent")
        with open(REF_PATH) as f:
            cls.ref = json.load(f)
        cls.d = stories("--model.stories.max_seqs=8", "--model.stories.chat_template=chatml").__enter__()

    @classmethod
    def tearDownClass(cls):
        if hasattr(cls, "d"):
            cls.d.__exit__(None, None, None)

    def complete(self, **body):
        body.setdefault("model", "stories")
        return self.d.json("POST", "/v1/completions", body, timeout=60)

    def test_models_and_ready(self):
        self.assertEqual(self.d.request("GET", "/ready")[0], 200)
        s, _, b = self.d.json("GET", "/v1/models")
        self.assertEqual(s, 200)
        self.assertEqual([m["id"] for m in b["data"]], ["stories"])
        self.assertEqual(b["data"][0]["meta"]["n_ctx"], 256)
        s, _, b = self.d.json("GET", "/v1/models/stories")
        self.assertEqual((s, b["id"], b["object"]), (200, "stories", "model"))

    def test_greedy_equals_llama_cpp(self):
        for case in self.ref:
            prompt = case["prompt"] if case["add_bos"] else case["token_ids"]
            s, _, b = self.complete(prompt=prompt, max_tokens=32, temperature=0)
            self.assertEqual(s, 200, b)
            c = b["choices"][0]
            self.assertEqual(c["text"], case["greedy_text_32"])
            self.assertEqual(c["finish_reason"], "length")
            usage = dict(b["usage"])
            cached = usage.pop("prompt_tokens_details")["cached_tokens"]
            self.assertEqual(usage, {"prompt_tokens": len(case["token_ids"]),
                                     "completion_tokens": 32,
                                     "total_tokens": len(case["token_ids"]) + 32})
            self.assertTrue(0 <= cached < len(case["token_ids"]))
            self.assertTrue(b["id"].startswith("cmpl-"))
            self.assertEqual(b["object"], "text_completion")

    def test_streaming_equals_whole(self):
        s, _, whole = self.complete(prompt="Lily wanted to", max_tokens=24, temperature=0.9, seed=7)
        self.assertEqual(s, 200)
        st, h, raw = self.d.request("POST", "/v1/completions", json.dumps(
            {"model": "stories", "prompt": "Lily wanted to", "max_tokens": 24, "temperature": 0.9,
             "seed": 7, "stream": True, "stream_options": {"include_usage": True}}).encode(), JSON_CT, 60)
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("text/event-stream"))
        ev = sse_events(raw)
        self.assertEqual(ev[-1], "[DONE]")
        usage = ev[-2]
        self.assertEqual(usage["choices"], [])
        self.assertEqual(usage["usage"]["completion_tokens"], 24)
        chunks = ev[:-2]
        text = "".join(c["choices"][0]["text"] for c in chunks)
        self.assertEqual(text, whole["choices"][0]["text"])
        self.assertEqual(chunks[-1]["choices"][0]["finish_reason"], "length")
        self.assertTrue(all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1]))
        self.assertEqual(len({c["id"] for c in chunks}), 1)

    def test_concurrent_equals_alone(self):
        # 16 clients, streaming and not, different lengths and seeds: each
        # gets exactly what it gets alone (each sequence owns its sampler)
        reqs = [dict(prompt=["Once upon a time", "Lily wanted to", "The cat", "Tom and Sue"][i % 4],
                     max_tokens=8 + 5 * i, temperature=0.8, seed=100 + i, stream=bool(i % 2))
                for i in range(16)]

        def run(r):
            body = dict(model="stories", **r)
            s, _, raw = self.d.request("POST", "/v1/completions", json.dumps(body).encode(), JSON_CT, 120)
            self.assertEqual(s, 200, raw)
            if r["stream"]:
                return "".join(e["choices"][0]["text"] for e in sse_events(raw)[:-1])
            return json.loads(raw)["choices"][0]["text"]

        alone = [run(r) for r in reqs]
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            together = list(ex.map(run, reqs))
        self.assertEqual(together, alone)
        _, _, m = self.d.request("GET", "/metrics")
        self.assertGreater(metric(m.decode(), "alignd_generated_tokens_total"), 0)

    def test_prefix_cache(self):
        # the same long prompt twice: the second reuses the first's KV
        # blocks (whole blocks of 16, never the last position), reports
        # them in usage, and answers the same
        prompt = ("Once upon a time, there was a little girl named Lily. She loved to play "
                  "outside in the park with her friends. One day, she saw a big red ball "
                  "under a tree and wanted to play with it. ") * 2
        _, _, m0 = self.d.request("GET", "/metrics")
        s1, _, a = self.complete(prompt=prompt, max_tokens=12, temperature=0)
        s2, _, b = self.complete(prompt=prompt, max_tokens=12, temperature=0)
        self.assertEqual((s1, s2), (200, 200))
        self.assertEqual(a["choices"][0]["text"], b["choices"][0]["text"])
        n = b["usage"]["prompt_tokens"]
        cached = b["usage"]["prompt_tokens_details"]["cached_tokens"]
        self.assertGreater(n, 64)
        self.assertTrue(cached % 16 == 0 and n - 16 <= cached < n, (cached, n))
        _, _, m1 = self.d.request("GET", "/metrics")
        hits = [metric(t.decode(), "alignd_prefix_cache_hits_total") for t in (m0, m1)]
        self.assertGreaterEqual(hits[1] - hits[0], 1)
        self.assertGreaterEqual(metric(m1.decode(), "alignd_prefix_cache_entries"), 1)

    def test_stop_strings_across_tokens(self):
        # greedy text: ", there was a little girl named Lily." where "girl"
        # comes as " g" "ir" "l": the stop spans three tokens
        s, _, b = self.complete(prompt="Once upon a time", max_tokens=32, temperature=0, stop=["girl na", "zzz"])
        self.assertEqual(s, 200, b)
        self.assertEqual(b["choices"][0]["text"], ", there was a little ")
        self.assertEqual(b["choices"][0]["finish_reason"], "stop")
        st, _, raw = self.d.request("POST", "/v1/completions", json.dumps(
            {"model": "stories", "prompt": "Once upon a time", "max_tokens": 32, "temperature": 0,
             "stop": "girl na", "stream": True}).encode(), JSON_CT, 60)
        ev = sse_events(raw)
        self.assertEqual("".join(e["choices"][0]["text"] for e in ev[:-1]), ", there was a little ")
        self.assertEqual(ev[-2]["choices"][0]["finish_reason"], "stop")

    def test_logprobs_and_n(self):
        s, _, b = self.complete(prompt="Once upon a time", max_tokens=3, temperature=0, logprobs=5)
        self.assertEqual(s, 200, b)
        lp = b["choices"][0]["logprobs"]
        self.assertEqual(lp["tokens"], [",", " there", " was"])
        self.assertEqual(len(lp["top_logprobs"][0]), 5)
        self.assertEqual(lp["text_offset"], [0, 1, 7])
        want = {e["token"]: e["logprob"] for e in self.ref[0]["top5_next_token_logprobs"]}
        for tok, v in lp["top_logprobs"][0].items():  # llama.cpp keeps K/V in F16
            self.assertAlmostEqual(v, want[tok], delta=2e-2)
        s, _, b = self.complete(prompt="Once upon a time", max_tokens=6, temperature=1.0, n=3, seed=5)
        self.assertEqual([c["index"] for c in b["choices"]], [0, 1, 2])
        self.assertEqual(b["usage"]["completion_tokens"], 18)
        s, _, b2 = self.complete(prompt="Once upon a time", max_tokens=6, temperature=1.0, n=3, seed=5)
        self.assertEqual([c["text"] for c in b["choices"]], [c["text"] for c in b2["choices"]])
        s, _, b = self.complete(prompt=["Once upon a time", "Lily wanted to"], max_tokens=4, temperature=0,
                                best_of=3, n=1, logprobs=0)
        self.assertEqual(s, 200, b)
        self.assertEqual(len(b["choices"]), 2)
        s, _, b = self.complete(prompt="Once upon a time", max_tokens=4, temperature=0, echo=True)
        self.assertTrue(b["choices"][0]["text"].startswith("Once upon a time, there"))

    def test_chat(self):
        s, _, b = self.d.json("POST", "/v1/chat/completions", {
            "model": "stories", "max_tokens": 12, "temperature": 0,
            "messages": [{"role": "system", "content": "Tell a story."},
                         {"role": "user", "content": "Once upon a time"}]}, timeout=60)
        self.assertEqual(s, 200, b)
        self.assertEqual(b["object"], "chat.completion")
        msg = b["choices"][0]["message"]
        self.assertEqual(msg["role"], "assistant")
        self.assertIsInstance(msg["content"], str)
        self.assertEqual(b["usage"]["completion_tokens"], 12)
        st, _, raw = self.d.request("POST", "/v1/chat/completions", json.dumps({
            "model": "stories", "max_tokens": 12, "temperature": 0, "stream": True,
            "messages": [{"role": "system", "content": "Tell a story."},
                         {"role": "user", "content": "Once upon a time"}]}).encode(), JSON_CT, 60)
        ev = sse_events(raw)
        self.assertEqual(ev[0]["object"], "chat.completion.chunk")
        self.assertEqual(ev[0]["choices"][0]["delta"]["role"], "assistant")
        self.assertEqual("".join(e["choices"][0]["delta"].get("content", "") for e in ev[:-1]), msg["content"])
        self.assertEqual(ev[-1], "[DONE]")
        # no max_tokens: until the context ends (it was the whole context, always a 400)
        s, _, b = self.d.json("POST", "/v1/chat/completions", {
            "model": "stories", "temperature": 0,
            "messages": [{"role": "user", "content": "Once upon a time"}]}, timeout=60)
        self.assertEqual(s, 200, b)
        u = b["usage"]
        self.assertGreaterEqual(u["completion_tokens"], 1)
        s, _, m = self.d.json("GET", "/v1/models")
        ctx = next(x for x in m["data"] if x["id"] == "stories")["meta"]["n_ctx"]
        self.assertLessEqual(u["prompt_tokens"] + u["completion_tokens"], ctx, b)

    def test_tokenize_detokenize(self):
        s, _, b = self.d.json("POST", "/tokenize", {"content": "Once upon a time", "add_special": True})
        self.assertEqual((s, b["tokens"]), (200, self.ref[0]["token_ids"]))
        s, _, b = self.d.json("POST", "/tokenize", {"content": "Once upon a time", "with_pieces": True})
        self.assertEqual([p["piece"] for p in b["tokens"]], self.ref[0]["token_pieces"][1:])
        s, _, b = self.d.json("POST", "/detokenize", {"tokens": self.ref[0]["greedy_token_ids_32"]})
        self.assertEqual((s, b["content"]), (200, self.ref[0]["greedy_text_32"]))
        s, _, b = self.d.json("POST", "/detokenize", {"tokens": [1, 99999]})
        self.assertEqual((s, b["error"]["param"]), (422, "tokens"))

    def test_validation(self):
        cases = [
            ({"prompt": "x"}, 400, "model", "invalid_request"),
            ({"model": "nope", "prompt": "x"}, 404, "model", "model_not_found"),
            ({"model": "stories"}, 400, "prompt", "invalid_request"),
            ({"model": "stories", "prompt": "x", "temperature": 5}, 422, "temperature", "invalid_value"),
            ({"model": "stories", "prompt": "x", "temperature": "hot"}, 400, "temperature", "invalid_request"),
            ({"model": "stories", "prompt": "x", "max_tokens": 0}, 422, "max_tokens", "invalid_value"),
            ({"model": "stories", "prompt": "x", "max_tokens": 255}, 400, "max_tokens", "context_length_exceeded"),
            ({"model": "stories", "prompt": "x", "n": 0}, 422, "n", "invalid_value"),
            ({"model": "stories", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, 422, "stop", "invalid_value"),
            ({"model": "stories", "prompt": "x", "stop": [1]}, 400, "stop", "invalid_request"),
            ({"model": "stories", "prompt": "x", "logit_bias": {"abc": 1}}, 422, "logit_bias", "invalid_value"),
            ({"model": "stories", "prompt": "x", "logit_bias": {"5": 101}}, 422, "logit_bias", "invalid_value"),
            ({"model": "stories", "prompt": "x", "stream_options": {"include_usage": True}}, 422, "stream_options", "invalid_value"),
            ({"model": "stories", "prompt": [1, 2, 100000]}, 422, "prompt", "invalid_value"),
            ({"model": "stories", "prompt": []}, 400, "prompt", "invalid_request"),
            ({"model": "stories", "prompt": "x", "best_of": 1, "n": 2}, 422, "best_of", "invalid_value"),
            ({"model": "stories", "prompt": "x", "top_p": 0}, 422, "top_p", "invalid_value"),
            ({"model": "stories", "prompt": "x", "seed": "one"}, 400, "seed", "invalid_request"),
        ]
        for body, status, param, code in cases:
            s, _, b = self.d.json("POST", "/v1/completions", body)
            self.assertEqual((s, b["error"]["param"], b["error"]["code"]), (status, param, code), (body, b))
        s, _, b = self.d.json("POST", "/v1/chat/completions", {"model": "stories", "messages": []})
        self.assertEqual((s, b["error"]["param"]), (400, "messages"))
        s, _, b = self.d.json("POST", "/v1/chat/completions", {"model": "stories", "messages": [{"role": "robot", "content": "x"}]})
        self.assertEqual((s, b["error"]["param"]), (422, "messages"))
        self.assertIn("messages[0].role", b["error"]["message"])
        # all tokens banned: the model cannot say anything
        s, _, b = self.complete(prompt="x", max_tokens=2, logit_bias={str(i): -100 for i in range(512)})
        self.assertEqual(s, 500, b)
        self.assertIn("banned", b["error"]["message"])


class ServingLimits(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(MODEL):
            print("\n*** SKIPPED: ../shared/models/stories260K.gguf is absent ***", file=sys.stderr)
            self.skipTest("../shared absent")

    def test_disconnect_frees_blocks(self):
        with stories("--model.stories.max_seqs=2") as d:
            sock = socket.create_connection(("127.0.0.1", d.port))
            body = json.dumps({"model": "stories", "prompt": "Once upon a time", "max_tokens": 240,
                               "temperature": 1.0, "stream": True, "logit_bias": {"2": -100}}).encode()
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            data = b""
            while data.count(b"data: ") < 3:
                more = sock.recv(4096)
                self.assertTrue(more, data)  # the stream must not end early
                data += more
            sock.close()
            deadline = time.time() + 10
            while time.time() < deadline:
                m = d.request("GET", "/metrics")[2].decode()
                if metric(m, "alignd_running_sequences") == 0 and metric(m, "alignd_kv_blocks_used") == 0:
                    break
                time.sleep(0.05)
            self.assertEqual(metric(m, "alignd_running_sequences"), 0)
            self.assertEqual(metric(m, "alignd_kv_blocks_used"), 0)
            self.assertLess(metric(m, "alignd_generated_tokens_total"), 240)
            self.assertRegex(m, r'alignd_requests_finished_total\{model="stories",reason="cancelled"\} 1')

    def test_queue_full_429(self):
        with stories("--model.stories.max_seqs=1", "--model.stories.queue_size=1") as d:
            body = {"model": "stories", "prompt": "Once upon a time", "max_tokens": 200,
                    "temperature": 1.0, "logit_bias": {"2": -100}}
            with concurrent.futures.ThreadPoolExecutor(6) as ex:
                futs = [ex.submit(d.json, "POST", "/v1/completions", body, None, 60) for _ in range(6)]
                results = [f.result() for f in futs]
            statuses = sorted(r[0] for r in results)
            self.assertIn(429, statuses)
            self.assertIn(200, statuses)
            r429 = next(r for r in results if r[0] == 429)
            self.assertEqual(r429[1]["retry-after"], "1")
            self.assertEqual(r429[2]["error"]["code"], "queue_full")

    def test_small_kv_pool_preempts_and_finishes(self):
        # a pool of 64 tokens for 4 sequences of up to 55: n=4 submits them
        # together, so they must take turns (preemption + recomputation) and
        # still all give the text the request gets alone
        with stories("--model.stories.max_seqs=4", "--model.stories.kv_budget=64",
                     "--model.stories.kv_block_size=8") as d:
            body = {"model": "stories", "prompt": "Once upon a time", "max_tokens": 50, "temperature": 0}
            s, _, one = d.json("POST", "/v1/completions", body, timeout=60)
            self.assertEqual(s, 200, one)
            alone = one["choices"][0]["text"]
            s, _, four = d.json("POST", "/v1/completions", dict(body, n=4), timeout=60)
            self.assertEqual(s, 200, four)
            self.assertEqual([c["text"] for c in four["choices"]], [alone] * 4)
            with concurrent.futures.ThreadPoolExecutor(4) as ex:
                outs = list(ex.map(lambda _: d.json("POST", "/v1/completions", body, timeout=60), range(4)))
            self.assertEqual([o[2]["choices"][0]["text"] for o in outs], [alone] * 4)
            m = d.request("GET", "/metrics")[2].decode()
            self.assertEqual(metric(m, "alignd_kv_blocks_used"), 0)
            self.assertGreater(metric(m, "alignd_preemptions_total"), 0)

    def test_bad_model_stops_startup(self):
        import subprocess
        r = subprocess.run([H.BINARY, "--model", "broken=/nonexistent/model.gguf",
                            f"--server.port={H.free_port()}"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("broken", r.stderr)
        self.assertIn("/nonexistent/model.gguf", r.stderr)

    def test_no_chat_template(self):
        with stories() as d:
            s, _, b = d.json("POST", "/v1/chat/completions", {"model": "stories", "messages": [{"role": "user", "content": "hi"}]})
            self.assertEqual(s, 422)
            self.assertIn("chat_template", b["error"]["message"])


if __name__ == "__main__":
    H.main(globals())

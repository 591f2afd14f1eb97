#!/usr/bin/env python3
"""LoRA adapters served per request: the daemon serves llama-tiny
(../shared/conformance, HF folder and GGUF file) with two PEFT adapters the
test writes itself (adapter_config.json + adapter_model.safetensors, PEFT's
tensor names, random non-zero A and B), and checks that
  - /v1/models lists them as MODEL:ADAPTER with "parent": MODEL;
  - a completion with an adapter differs from the base model's, the same
    adapter twice gives the same output, and "MODEL:ADAPTER" and the
    "adapter" field agree (chat too);
  - an unknown adapter is a 404 naming it and the model; disagreeing names
    are a 400;
  - concurrent requests mixing the base model and both adapters each get
    what they get alone;
  - the HF folder and the GGUF file (whose q/k rows the loader permutes)
    give the same adapted log-probs;
  - a broken adapter stops start-up with its name.
"""
import concurrent.futures
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared")
TINY = os.path.join(SHARED, "conformance", "llama-tiny")
TINY_GGUF = os.path.join(TINY, "model-f32.gguf")
JSON_CT = {"Content-Type": "application/json"}
PROMPT_IDS = [1, 450, 4996, 17354, 1701, 432, 17204, 975, 278]  # "The quick brown fox ..."

LLAMA_MODULES = {  # PEFT module -> (input width, output width) on llama-tiny
    "self_attn.q_proj": ("C", "A"), "self_attn.k_proj": ("C", "KV"), "self_attn.v_proj": ("C", "KV"),
    "self_attn.o_proj": ("A", "C"), "mlp.gate_proj": ("C", "FF"), "mlp.up_proj": ("C", "FF"),
    "mlp.down_proj": ("FF", "C"),
}


def write_safetensors(path, tensors):
    """tensors: name -> (shape, list of floats); F32, as safetensors lays it out."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, (shape, vals) in sorted(tensors.items()):
        data = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def write_peft_adapter(folder, seed, rank=4, alpha=8):
    """A PEFT LoRA folder for llama-tiny on every projection."""
    with open(os.path.join(TINY, "config.json")) as f:
        cfg = json.load(f)
    C, L, FF = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    hd = C // cfg["num_attention_heads"]
    dims = {"C": C, "A": cfg["num_attention_heads"] * hd, "KV": cfg["num_key_value_heads"] * hd, "FF": FF}
    rng = random.Random(seed)
    tensors = {}
    for layer in range(L):
        for mod, (i, o) in LLAMA_MODULES.items():
            pre = f"base_model.model.model.layers.{layer}.{mod}"
            n_in, n_out = dims[i], dims[o]
            tensors[pre + ".lora_A.weight"] = ((rank, n_in), [rng.uniform(-1, 1) / n_in ** 0.5
                                                              for _ in range(rank * n_in)])
            tensors[pre + ".lora_B.weight"] = ((n_out, rank), [rng.gauss(0, 0.3) for _ in range(n_out * rank)])
    os.makedirs(folder, exist_ok=True)
    write_safetensors(os.path.join(folder, "adapter_model.safetensors"), tensors)
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": alpha,
              "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": False, "use_rslora": False,
              "base_model_name_or_path": None, "inference_mode": True,
              "target_modules": sorted(m.split(".")[1] for m in LLAMA_MODULES)}
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump(config, f)


def skip_without_shared():
    if not os.path.exists(TINY_GGUF):
        print("\n*** SKIPPED: ../shared/conformance/llama-tiny is absent ***", file=sys.stderr)
        raise unittest.SkipTest("../shared absent")


class Adapters(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        skip_without_shared()
        cls.tmp = tempfile.mkdtemp(prefix="alignd_adapters_")
        cls.dir_a, cls.dir_b = os.path.join(cls.tmp, "style_a"), os.path.join(cls.tmp, "style-b")
        write_peft_adapter(cls.dir_a, 1)
        write_peft_adapter(cls.dir_b, 2, rank=2, alpha=4)
        ad = f"a={cls.dir_a}, b.2={cls.dir_b}"
        cls.d = H.Daemon("--model", f"tiny={TINY}", "--model", f"tinyg={TINY_GGUF}",
                         f"--model.tiny.adapters={ad}", f"--model.tinyg.adapters={ad}",
                         "--model.tiny.chat_template=chatml", "--model.tiny.max_seqs=8",
                         "--model.tiny.n_ctx=128", "--model.tinyg.n_ctx=128").__enter__()

    @classmethod
    def tearDownClass(cls):
        if hasattr(cls, "d"):
            cls.d.__exit__(None, None, None)
        if hasattr(cls, "tmp"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def complete(self, status=200, **body):
        body.setdefault("prompt", PROMPT_IDS)
        body.setdefault("max_tokens", 8)
        body.setdefault("temperature", 0)
        body.setdefault("logprobs", 1)
        s, _, b = self.d.json("POST", "/v1/completions", body, timeout=60)
        self.assertEqual(s, status, b)
        return b

    def greedy(self, model, **extra):
        b = self.complete(model=model, **extra)
        c = b["choices"][0]
        return c["text"], c["logprobs"]["token_logprobs"], b["model"]

    def test_models_list(self):
        s, _, b = self.d.json("GET", "/v1/models")
        self.assertEqual(s, 200)
        ids = [m["id"] for m in b["data"]]
        self.assertEqual(ids, ["tiny", "tiny:a", "tiny:b.2", "tinyg", "tinyg:a", "tinyg:b.2"])
        entry = b["data"][1]
        self.assertEqual((entry["object"], entry["parent"]), ("model", "tiny"))
        self.assertEqual(entry["meta"]["rank"], 4)
        self.assertEqual(sorted(entry["meta"]["targets"]), sorted(["q", "k", "v", "o", "gate", "up", "down"]))
        self.assertNotIn("parent", b["data"][0])
        s, _, one = self.d.json("GET", "/v1/models/tiny:b.2")
        self.assertEqual((s, one["id"], one["parent"], one["meta"]["rank"]), (200, "tiny:b.2", "tiny", 2))
        s, _, e = self.d.json("GET", "/v1/models/tiny:zzz")
        self.assertEqual((s, e["error"]["code"]), (404, "adapter_not_found"))

    def test_adapter_changes_output_deterministically(self):
        base_text, base_lp, model = self.greedy("tiny")
        self.assertEqual(model, "tiny")
        a_text, a_lp, model = self.greedy("tiny:a")
        self.assertEqual(model, "tiny:a")
        self.assertTrue(a_text != base_text or max(abs(x - y) for x, y in zip(a_lp, base_lp)) > 1e-3,
                        (a_text, base_text))
        self.assertEqual(self.greedy("tiny:a")[:2], (a_text, a_lp))  # same adapter, same output
        # both ways of naming the adapter, and both together when they agree
        self.assertEqual(self.greedy("tiny", adapter="a")[:2], (a_text, a_lp))
        self.assertEqual(self.greedy("tiny:a", adapter="a")[:2], (a_text, a_lp))
        b_text, b_lp, _ = self.greedy("tiny", adapter="b.2")
        self.assertNotEqual((b_text, b_lp), (a_text, a_lp))
        self.assertEqual(self.greedy("tiny", adapter=None)[:2], (base_text, base_lp))

    def test_streaming_with_adapter(self):
        whole = self.complete(model="tiny:a", logprobs=None)["choices"][0]["text"]
        st, _, raw = self.d.request("POST", "/v1/completions", json.dumps(
            {"model": "tiny", "adapter": "a", "prompt": PROMPT_IDS, "max_tokens": 8, "temperature": 0,
             "stream": True}).encode(), JSON_CT, 60)
        self.assertEqual(st, 200)
        events = [json.loads(x[6:]) for x in raw.decode().split("\n\n") if x.startswith("data: {")]
        self.assertEqual("".join(e["choices"][0]["text"] for e in events), whole)
        self.assertEqual({e["model"] for e in events}, {"tiny:a"})

    def test_chat_with_adapter(self):
        def chat(**kw):
            s, _, b = self.d.json("POST", "/v1/chat/completions", dict(
                messages=[{"role": "user", "content": "Hello there"}], max_tokens=6, temperature=0,
                logprobs=True, **kw), timeout=60)
            self.assertEqual(s, 200, b)
            c = b["choices"][0]
            return c["message"]["content"], [t["logprob"] for t in c["logprobs"]["content"]], b["model"]
        base = chat(model="tiny")
        via_model = chat(model="tiny:a")
        via_field = chat(model="tiny", adapter="a")
        self.assertEqual(via_model, via_field)
        self.assertEqual(via_model[2], "tiny:a")
        self.assertNotEqual(base[:2], via_model[:2])

    def test_unknown_and_disagreeing(self):
        for body in ({"model": "tiny:nope"}, {"model": "tiny", "adapter": "nope"}):
            b = self.complete(status=404, **body)
            e = b["error"]
            self.assertEqual((e["code"], e["type"]), ("adapter_not_found", "not_found_error"))
            self.assertIn("'nope'", e["message"])
            self.assertIn("'tiny'", e["message"])
            self.assertEqual(e["param"], "model" if ":" in body["model"] else "adapter")
        s, _, b = self.d.json("POST", "/v1/chat/completions", {
            "model": "tiny:nope", "messages": [{"role": "user", "content": "x"}]})
        self.assertEqual((s, b["error"]["code"]), (404, "adapter_not_found"))
        b = self.complete(status=400, model="tiny:a", adapter="b.2")
        self.assertEqual(b["error"]["param"], "adapter")
        b = self.complete(status=404, model="nomodel:a")
        self.assertEqual(b["error"]["code"], "model_not_found")
        b = self.complete(status=400, model="tiny", adapter=3)
        self.assertEqual(b["error"]["param"], "adapter")

    def test_concurrent_mixed_equals_alone(self):
        reqs = [dict(model=["tiny", "tiny:a", "tiny:b.2"][i % 3],
                     prompt=PROMPT_IDS[: 3 + i % 5], max_tokens=6 + i, temperature=0.9 if i % 2 else 0,
                     seed=50 + i, stream=bool(i % 4 == 1), logprobs=None) for i in range(12)]

        def run(r):
            s, _, raw = self.d.request("POST", "/v1/completions", json.dumps(r).encode(), JSON_CT, 120)
            self.assertEqual(s, 200, raw)
            if r["stream"]:
                return "".join(json.loads(x[6:])["choices"][0]["text"]
                               for x in raw.decode().split("\n\n") if x.startswith("data: {"))
            return json.loads(raw)["choices"][0]["text"]

        alone = [run(r) for r in reqs]
        with concurrent.futures.ThreadPoolExecutor(12) as ex:
            together = list(ex.map(run, reqs))
        self.assertEqual(together, alone)
        m = self.d.request("GET", "/metrics")[2].decode()
        got = re.search(r'^alignd_adapter_requests_total\{model="tiny",adapter="a"\} (\d+)$', m, re.M)
        self.assertIsNotNone(got, m)
        self.assertGreaterEqual(int(got.group(1)), 8)

    def test_gguf_equals_hf(self):
        # the same PEFT folder on the GGUF model (q/k rows permuted by the
        # converter) and on the HF folder: the same adapted model
        for name in ("a", "b.2"):
            _, hf, _ = self.greedy("tiny:" + name, max_tokens=4)
            _, gg, _ = self.greedy("tinyg:" + name, max_tokens=4)
            self.assertLess(max(abs(x - y) for x, y in zip(hf, gg)), 1e-3, (name, hf, gg))


class AdapterStartup(unittest.TestCase):
    def setUp(self):
        skip_without_shared()

    def start(self, adapters):
        r = subprocess.run([H.BINARY, "--model", f"tiny={TINY}", f"--model.tiny.adapters={adapters}",
                            f"--server.port={H.free_port()}"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        return r.stderr

    def test_bad_adapters_stop_startup(self):
        err = self.start("broken=/nonexistent/adapter")
        self.assertIn("broken", err)
        self.assertIn("/nonexistent/adapter", err)
        self.assertIn("NAME=DIR", self.start("no-equals-sign"))
        self.assertIn("a:b", self.start("a:b=/tmp"))
        tmp = tempfile.mkdtemp(prefix="alignd_adapters_")
        try:
            write_peft_adapter(os.path.join(tmp, "x"), 3)
            self.assertIn("twice", self.start(f"x={tmp}/x,x={tmp}/x"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    H.main(globals())

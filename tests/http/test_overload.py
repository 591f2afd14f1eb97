#!/usr/bin/env python3
"""Overload: the real daemon (stories260K, ../shared/models) driven far
above its capacity for a bounded time (8 s, loopback) by the load generator
of bench/overload.py, which the bench runs for longer and prints.

The engine is kept small (max_seqs 4, queue_size 8) and 32 clients send
non-streamed completions of 100 tokens back to back, retrying a 429 at once:
some hundred times what the engine can serve. Checked: the daemon stays up;
most requests are refused with 429 + Retry-After + the queue_full JSON error,
and quickly; no connection errors, no 5xx; /health answers every probe
(one every 100 ms, from a process of its own) with 200 and fast; the
resident memory stays under a bound derived from the configured budgets
(see rss_bound); afterwards the queue drains, the KV pool and the in-flight
gauge are back to idle, and a single request takes about as long as before.

Thresholds are generous (several times what a busy 2-core machine shows;
figures in the bench's README paragraph) but meaningful: a handler blocking
the loop, a 429 path that waits for the engine, a leak per request or a
queue that does not drain would each fail them. Sanitizer builds skip the
memory bound (ASan's quarantine keeps freed memory) and get 4x the time limits.
"""
import os
import re
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
import alignd_harness as H  # noqa: E402
import overload  # noqa: E402  (bench/overload.py)

SHARED = os.path.join(HERE, "..", "..", "..", "shared")
MODEL = os.path.join(SHARED, "models", "stories260K.gguf")

MAX_SEQS, QUEUE, N_CTX, KV_BLOCK, MAX_BODY = 4, 8, 128, 16, 64 * 1024
CLIENTS, PROCS, SECONDS, MAX_TOKENS = 32, 2, 8.0, 100
MHD_CONN_BYTES = 64 * 1024  # MHD's per-connection pool (32 KiB default) and our reply buffers, rounded up
MARGIN = 16 << 20           # allocator arenas, thread stacks touched under load, log buffers


def sanitized():
    with open(H.BINARY, "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__tsan_init" in data or b"__msan_init" in data


def gauge(text, name, model="m"):
    m = re.search(r'^%s\{model="%s"\} (\d+)$' % (re.escape(name), model), text, re.M)
    return int(m.group(1)) if m else None


def rss_bound(idle_kb, meta, kv_blocks, kv_block_size):
    """Bytes the daemon may hold at most under this load: its idle RSS, plus
    the KV pool at its configured size (blocks x block size x layers x K and
    V x n_embd floats: n_embd bounds the KV width from above), plus, for
    every connection the clients (and the probes) open, the largest body it
    may send (server.max_body_size) and MHD's connection memory, plus, for
    each request the engine holds (running and queued), its tokens, sampler
    and answer (64 KiB is far more than a 128-token context needs), plus
    a fixed margin."""
    kv = kv_blocks * kv_block_size * meta["n_layer"] * 2 * meta["n_embd"] * 4
    conns = (CLIENTS + 4) * (MAX_BODY + MHD_CONN_BYTES)
    engine = (MAX_SEQS + QUEUE) * 64 * 1024
    return idle_kb * 1024 + kv + conns + engine + MARGIN, {"kv": kv, "conns": conns, "engine": engine}


class Overload(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(MODEL):
            print("\n*** SKIPPED: ../shared/models/stories260K.gguf is absent ***", file=sys.stderr)
            self.skipTest("../shared absent")

    def test_far_above_capacity(self):
        slow = 4.0 if sanitized() else 1.0
        with H.Daemon("--model", f"m={MODEL}", f"--model.m.max_seqs={MAX_SEQS}",
                      f"--model.m.queue_size={QUEUE}", f"--model.m.n_ctx={N_CTX}",
                      f"--model.m.kv_block_size={KV_BLOCK}",
                      f"--server.max_body_size={MAX_BODY}", "--training.enabled=false",
                      "--log.level=info") as d:
            url = f"http://127.0.0.1:{d.port}"
            _, _, models = d.json("GET", "/v1/models")
            meta = models["data"][0]["meta"]
            m = d.request("GET", "/metrics")[2].decode()
            kv_blocks = gauge(m, "alignd_kv_blocks_free") + gauge(m, "alignd_kv_blocks_used")

            f = overload.run(url, "m", d.proc.pid, seconds=SECONDS, clients=CLIENTS, procs=PROCS,
                             max_tokens=MAX_TOKENS, idle_requests=9, drain_timeout=30,
                             access_log=d.log_path)
            sys.stderr.write("\n")
            overload.print_table(f, sys.stderr)

            # stays up, and nobody got anything but 200 or 429
            self.assertIsNone(d.proc.poll(), "the daemon died under load")
            self.assertEqual(d.request("GET", "/health")[0], 200)
            self.assertEqual(f["connection_errors"], 0, f["first_error"])
            self.assertEqual((f["status_503"], f["status_other"]), (0, {}))
            # far above capacity: most requests are refused, with the right answer
            self.assertGreaterEqual(f["status_200"], 1)
            self.assertGreaterEqual(f["status_429"], 100)
            self.assertGreater(f["share_429"], 0.5)
            self.assertEqual(f["bad_429"], 0, f["bad_429_example"])
            # ... and quickly: a 429 does not wait for the engine. In the
            # daemon (access log: headers in to answer sent) and as the
            # clients see it, which adds their own waits for a CPU
            self.assertLess(f["server_429_p99_ms"], 100 * slow)
            self.assertLess(f["lat_429_p99_ms"], 1000 * slow)
            # the engine stayed within its configuration
            self.assertLessEqual(f["queue_depth_max"], QUEUE)
            self.assertLessEqual(f["running_max"], MAX_SEQS)
            # admitted requests wait at most for the queue ahead of them
            self.assertLess(f["lat_200_p99_ms"], 10000 * slow)
            # /health answers every probe, fast
            self.assertGreaterEqual(f["health_probes"], int(SECONDS / 0.1 * 0.25))
            self.assertEqual(f["health_failed"], [])
            self.assertLess(f["health_p50_ms"], 250 * slow)
            self.assertLess(f["health_max_ms"], 2000 * slow)
            # memory within the configured budgets
            bound, parts = rss_bound(f["rss_idle_kb"], meta, kv_blocks, KV_BLOCK)
            sys.stderr.write(f"RSS bound {bound / 2**20:.1f} MiB = idle {f['rss_idle_kb'] / 1024:.1f} MiB + "
                             + " + ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in parts.items())
                             + f" + margin {MARGIN / 2**20:.0f} MiB\n")
            if sanitized():
                print("\n*** memory bound not checked: sanitizer build ***", file=sys.stderr)
            else:
                self.assertLess(max(f["rss_max_kb"], f["vm_hwm_kb"]) * 1024, bound)
            # after the load: drained, back to idle, latency back to normal
            self.assertIsNotNone(f["drained_after_s"], "the queue did not drain")
            self.assertLess(f["drained_after_s"], 10 * slow)
            m = d.request("GET", "/metrics")[2].decode()
            self.assertEqual(gauge(m, "alignd_kv_blocks_used"), 0)
            self.assertEqual(gauge(m, "alignd_queue_depth"), 0)
            self.assertEqual(gauge(m, "alignd_running_sequences"), 0)
            self.assertRegex(m, r"\nalignd_http_requests_in_flight 1\n")  # this request
            self.assertLess(f["idle_after_ms"], 3 * f["idle_before_ms"] + 100 * slow)


if __name__ == "__main__":
    H.main(globals())

#!/usr/bin/env python3
"""Serving latency while the closed loop trains, against the same daemon
without training, in one run.

  bench/loop_latency.py --binary build/alignd --model ../shared/models/stories260K.gguf \
      [--pairs 300] [--clients 4] [--seconds 20] [--max-tokens 32] [--epochs 30]

Starts alignd with the loop enabled on a fresh store, posts synthetic
preference pairs (tests/http/pairs_util.py: the "happy" rule on the model's
own samples), measures non-streamed /v1/completions latency with `clients`
concurrent clients for `seconds` (idle), then starts a training run
(POST /v1/training/runs, kind "both") and measures again while the run is
running. Prints p50/p99 latency and requests/s for both phases and their
ratios. Figures, not pass/fail. Standard library only.
"""
import argparse
import json
import os
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "http"))
import alignd_harness as H  # noqa: E402
import pairs_util  # noqa: E402


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))] if xs else float("nan")


def load(d, clients, seconds, max_tokens):
    """Latencies (s) of back-to-back requests from `clients` threads."""
    lat, lock, stop = [], threading.Lock(), time.time() + seconds

    def client(k):
        i = 0
        while time.time() < stop:
            body = {"model": "m", "prompt": f"Once upon a time, client {k} saw", "seed": i,
                    "max_tokens": max_tokens, "temperature": 1.0}
            t0 = time.perf_counter()
            status, _, b = d.json("POST", "/v1/completions", body, timeout=300)
            dt = time.perf_counter() - t0
            if status != 200:
                raise RuntimeError(f"completion failed: {status} {b}")
            with lock:
                lat.append(dt)
            i += 1

    ts = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return lat, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=30, help="epochs of the run (keeps it running)")
    a = ap.parse_args()
    H.BINARY = os.path.abspath(a.binary)
    tmp = tempfile.mkdtemp(prefix="alignd_looplat_")
    with H.Daemon("--model", f"m={a.model}", f"--training.dir={tmp}",
                  f"--training.epochs={a.epochs}") as d:
        pairs = pairs_util.on_policy_pairs(d, "m")[:a.pairs]
        pairs_util.post_feedback(d, pairs)
        idle, idle_s = load(d, a.clients, a.seconds, a.max_tokens)
        status, _, run = d.json("POST", "/v1/training/runs", {"model": "m", "kind": "both"})
        if status != 202:
            raise SystemExit(f"cannot start a run: {status} {run}")
        busy, busy_s = load(d, a.clients, a.seconds, a.max_tokens)
        s, _, r = d.json("GET", f"/v1/training/runs/{run['id']}")
        still = r.get("status")
        d.json("DELETE", f"/v1/training/runs/{run['id']}")
    rows = []
    for name, lat, secs in (("idle", idle, idle_s), ("training", busy, busy_s)):
        rows.append((name, len(lat) / secs, percentile(lat, 50), percentile(lat, 99)))
        print(f"{name:9s} {len(lat):4d} requests  {len(lat) / secs:6.2f} req/s  "
              f"p50 {percentile(lat, 50) * 1e3:7.1f} ms  p99 {percentile(lat, 99) * 1e3:7.1f} ms")
    print(f"ratio (training / idle): p50 x{rows[1][2] / rows[0][2]:.2f}, "
          f"p99 x{rows[1][3] / rows[0][3]:.2f}, throughput x{rows[1][1] / rows[0][1]:.2f} "
          f"(the run was {still} at the end of the measurement)")


if __name__ == "__main__":
    main()

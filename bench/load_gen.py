#!/usr/bin/env python3
"""Load generator for OpenAI-compatible completion servers (alignd, or
llama.cpp's llama-server for the side-by-side baseline).

  bench/load_gen.py --url http://127.0.0.1:8080 --model NAME \
      [--concurrency 1,4,16,64] [--requests-per-client 4] \
      [--prompt-tokens 64] [--max-tokens 128]

Each client sends streamed /v1/completions requests back to back with a
prompt of token ids (so every server sees the same length; distinct per
request unless --same-prompt) and
ignore-EOS-style settings (logit_bias bans EOS; min_tokens is not OpenAI),
and records time to first token and the gaps between tokens. Prints, per
concurrency: aggregate generated tokens/s, TTFT p50/p99, inter-token
latency p50/p99. Figures, not pass/fail. Standard library only.
"""
import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def one_request(url, body):
    """Streams one completion; returns (ttft, [gaps], n_tokens)."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError(f"status {r.status}: {r.read()[:200]!r}")
    ttft, last, gaps, n = None, None, [], 0
    buf = b""
    while True:
        chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            data = event.decode().removeprefix("data: ").strip()
            if data == "[DONE]" or not data:
                continue
            obj = json.loads(data)
            if not obj.get("choices"):
                continue
            if obj["choices"][0].get("text", "") == "" and obj["choices"][0].get("finish_reason"):
                continue
            now = time.perf_counter()
            if ttft is None:
                ttft = now - t0
            else:
                gaps.append(now - last)
            last = now
            n += 1
    conn.close()
    return ttft, gaps, n


def run_level(args, concurrency):
    ttfts, gaps, tokens, errors = [], [], [0], []
    lock = threading.Lock()
    counter = [0]

    def body_for(k):
        # distinct prompts (after BOS) unless --same-prompt: no server gets
        # to reuse a previous request's KV, so this measures computing
        shift = 0 if args.same_prompt else 13 * k + 1
        prompt = [1] + [(i * 7 + shift) % 400 + 30 for i in range(args.prompt_tokens - 1)]
        return {"model": args.model, "prompt": prompt, "max_tokens": args.max_tokens,
                "temperature": 1.0, "seed": 1, "stream": True, "logit_bias": {str(args.eos): -100}}

    def client():
        for _ in range(args.requests_per_client):
            with lock:
                counter[0] += 1
                k = counter[0]
            try:
                t, g, n = one_request(args.url, body_for(k))
            except Exception as e:  # noqa: BLE001 - reported, not fatal
                with lock:
                    errors.append(str(e))
                continue
            with lock:
                ttfts.append(t)
                gaps.extend(g)
                tokens[0] += n

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"concurrency": concurrency, "requests": len(ttfts), "errors": len(errors),
            "tokens": tokens[0], "wall_s": wall, "tokens_per_s": tokens[0] / wall,
            "ttft_p50_ms": percentile(ttfts, 50) * 1e3, "ttft_p99_ms": percentile(ttfts, 99) * 1e3,
            "itl_p50_ms": percentile(gaps, 50) * 1e3, "itl_p99_ms": percentile(gaps, 99) * 1e3,
            "first_error": errors[0] if errors else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--requests-per-client", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--eos", type=int, default=2, help="EOS token id to ban so every request runs to max_tokens")
    ap.add_argument("--same-prompt", action="store_true",
                    help="every request the same prompt (prefix caches then skip its prefill)")
    ap.add_argument("--json", action="store_true", help="print one JSON object per level")
    args = ap.parse_args()
    print(f"# {args.url} model={args.model} prompt={args.prompt_tokens} max_tokens={args.max_tokens}")
    print(f"{'conc':>5} {'reqs':>5} {'err':>4} {'tok/s':>9} {'ttft p50':>9} {'ttft p99':>9} {'itl p50':>8} {'itl p99':>8}")
    for c in [int(x) for x in args.concurrency.split(",")]:
        r = run_level(args, c)
        if args.json:
            print(json.dumps(r))
        else:
            print(f"{c:>5} {r['requests']:>5} {r['errors']:>4} {r['tokens_per_s']:>9.1f} "
                  f"{r['ttft_p50_ms']:>7.1f}ms {r['ttft_p99_ms']:>7.1f}ms {r['itl_p50_ms']:>6.1f}ms {r['itl_p99_ms']:>6.1f}ms")
        if r["first_error"]:
            print(f"      first error: {r['first_error']}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Overload: drives alignd far above its capacity for a bounded time, on
loopback, and reports how it holds up.

  bench/overload.py --binary build/alignd --model ../shared/models/stories260K.gguf \\
      [--seconds 20] [--clients 64] [--procs 2] [--max-tokens 100] \\
      [--max-seqs 4] [--queue-size 8] [--json]
  bench/overload.py --url http://127.0.0.1:8080 --model-name NAME [--pid PID] ...

With --binary it starts its own daemon (loopback, a fresh store, log level
info, access log on) with a small engine (max_seqs, queue_size) so that the
offered load is many times what it can serve; with --url it drives a running
daemon (--pid lets it read that daemon's memory from /proc).

Phases: (1) idle: a few single completions, one after the other (their
median is the idle latency); (2) load: `clients` threads spread over `procs`
processes send non-streamed /v1/completions back to back on keep-alive
connections for `seconds` (EOS banned so every admitted request runs to
max_tokens; a 429 is retried at once, no back-off: the worst case), while a
separate process probes GET /health every 100 ms on a fresh connection and a
thread samples the daemon's VmRSS (and the queue / KV gauges of /metrics);
(3) the clients stop (each finishes the request it is in), the daemon's queue
drains, and single completions are timed again.

Prints: requests sent, counts by status (200 / 429 / 503 / other /
connection errors), 429s without Retry-After or the queue_full JSON error,
latency p50/p99 of the 429s and of the admitted (200) requests, /health
latency p50/p99/max and failures, the 429 and 200 latencies as the daemon's
access log has them (server side, without the clients' own delays; with
--binary, or --access-log with --url), max RSS (sampled VmRSS, and VmHWM), max
queue depth and KV blocks seen, and the idle latency before and after.
Figures, not pass/fail (tests/http/test_overload.py asserts on a short run).
The load generator shares the machine with the daemon: on a small machine
its own CPU use is part of what the daemon competes with. Standard library
only.
"""
import argparse
import calendar
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))]


def completion_body(model, max_tokens, eos, prompt="Once upon a time"):
    return {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 1.0,
            "logit_bias": {str(eos): -100}}


def _hostport(url):
    u = urllib.parse.urlparse(url)
    return u.hostname, u.port or 80


# ---------------------------------------------------------------- subprocesses

def _worker(url, threads, start_at, stop_at, body, timeout):
    """Load clients (a subprocess): prints one JSON object with the results."""
    host, port = _hostport(url)
    data = json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json"}
    lock = threading.Lock()
    out = {"lat": {}, "bad_429": 0, "errors": 0, "first_error": None, "bad_429_example": None}

    def client():
        conn = None
        lat = {}
        bad, errors, first_error, example = 0, 0, None, None
        while time.time() < start_at:
            time.sleep(0.005)
        while time.time() < stop_at:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/v1/completions", data, hdrs)
                r = conn.getresponse()
                raw = r.read()
                dt = time.perf_counter() - t0
                status = r.status
                if status == 429:
                    try:
                        code = json.loads(raw)["error"]["code"]
                    except (ValueError, KeyError, TypeError):
                        code = None
                    if code != "queue_full" or r.getheader("Retry-After") is None:
                        bad += 1
                        example = example or f"{r.getheaders()} {raw[:200]!r}"
                if r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                dt = time.perf_counter() - t0
                status = "error"
                errors += 1
                first_error = first_error or f"{type(e).__name__}: {e}"
                if conn is not None:
                    conn.close()
                conn = None
            lat.setdefault(str(status), []).append(dt)
        if conn is not None:
            conn.close()
        with lock:
            for k, v in lat.items():
                out["lat"].setdefault(k, []).extend(v)
            out["bad_429"] += bad
            out["errors"] += errors
            out["first_error"] = out["first_error"] or first_error
            out["bad_429_example"] = out["bad_429_example"] or example

    ts = [threading.Thread(target=client) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out["lat"].pop("error", None)  # counted in errors
    sys.stdout.write(json.dumps(out))


def _health(url, start_at, stop_at, interval):
    """/health prober (a subprocess of its own, so the load clients' GIL does
    not delay it): prints JSON {"lat": [...], "failed": [...]}."""
    host, port = _hostport(url)
    lat, failed = [], []
    while time.time() < start_at:
        time.sleep(0.005)
    while time.time() < stop_at:
        t0 = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("GET", "/health")
            r = conn.getresponse()
            r.read()
            conn.close()
            dt = time.perf_counter() - t0
            if r.status == 200:
                lat.append(dt)
            else:
                failed.append(f"status {r.status} after {dt:.3f}s")
        except (OSError, http.client.HTTPException) as e:
            failed.append(f"{type(e).__name__}: {e} after {time.perf_counter() - t0:.3f}s")
        time.sleep(max(0.0, interval - (time.perf_counter() - t0)))
    sys.stdout.write(json.dumps({"lat": lat, "failed": failed}))


# ---------------------------------------------------------------- daemon side

def read_status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def request(url, method, path, obj=None, timeout=60):
    host, port = _hostport(url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        body = json.dumps(obj).encode() if obj is not None else None
        conn.request(method, path, body, {"Content-Type": "application/json"} if body else {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def gauges(url, model):
    """alignd_queue_depth, alignd_running_sequences, alignd_kv_blocks_used of `model`."""
    try:
        _, text = request(url, "GET", "/metrics", timeout=10)
    except OSError:
        return {}
    out = {}
    for name in ("alignd_queue_depth", "alignd_running_sequences", "alignd_kv_blocks_used",
                 "alignd_kv_blocks_free"):
        m = re.search(r'^%s\{model="%s"\} (\d+)$' % (name, re.escape(model)), text.decode(), re.M)
        if m:
            out[name] = int(m.group(1))
    return out


def idle_latency(url, body, n):
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        status, raw = request(url, "POST", "/v1/completions", body)
        if status != 200:
            raise RuntimeError(f"idle completion failed: {status} {raw[:300]!r}")
        lat.append(time.perf_counter() - t0)
    return lat


def access_log_latencies(path, start, stop):
    """Server-side durations (s) of the completions in the daemon's JSON
    access log whose line was written between start and stop (epoch s), by
    status: what the daemon spent, without the clients' own delays."""
    out = {}
    with open(path, errors="replace") as f:
        for line in f:
            if not line.startswith("{"):
                continue
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("level") != "access" or j.get("path") != "/v1/completions":
                continue
            t = calendar.timegm(time.strptime(j["time"][:19], "%Y-%m-%dT%H:%M:%S")) + float(j["time"][19:23])
            if not start <= t <= stop:
                continue
            out.setdefault(str(j["status"]), []).append(j["duration_ms"] / 1e3)
    return out


def run(url, model, pid=None, seconds=20.0, clients=64, procs=2, max_tokens=100, eos=2,
        idle_requests=5, drain_timeout=120.0, access_log=None):
    """Runs the three phases against `url`; returns a dict of figures.
    access_log: the daemon's log file (JSON access lines), for the
    server-side latencies."""
    body = completion_body(model, max_tokens, eos)
    idle_latency(url, body, 2)  # warm-up
    before = idle_latency(url, body, idle_requests)
    rss_idle = read_status_kb(pid, "VmRSS") if pid else None

    start_at = time.time() + 0.5  # every process starts together
    stop_at = start_at + seconds
    me = os.path.abspath(__file__)
    health = subprocess.Popen([sys.executable, me, "--_health", url, repr(start_at), repr(stop_at), "0.1"],
                              stdout=subprocess.PIPE)
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    workers = [subprocess.Popen([sys.executable, me, "--_worker", url, str(n), repr(start_at), repr(stop_at),
                                 json.dumps(body), "300"], stdout=subprocess.PIPE)
               for n in per if n > 0]

    samples = {"rss": [], "queue": [], "kv": [], "running": []}
    stop_sampling = threading.Event()

    def sampler():  # VmRSS every 50 ms, the gauges every 500 ms
        k = 0
        while not stop_sampling.is_set():
            if pid:
                v = read_status_kb(pid, "VmRSS")
                if v is not None:
                    samples["rss"].append(v)
            if k % 10 == 0 and time.time() >= start_at:
                g = gauges(url, model)
                samples["queue"].append(g.get("alignd_queue_depth", 0))
                samples["kv"].append(g.get("alignd_kv_blocks_used", 0))
                samples["running"].append(g.get("alignd_running_sequences", 0))
            k += 1
            stop_sampling.wait(0.05)

    st = threading.Thread(target=sampler, daemon=True)
    st.start()
    results = []
    for w in workers:
        out, _ = w.communicate()
        results.append(json.loads(out))
    t_clients_done = time.time()
    hout, _ = health.communicate()
    hres = json.loads(hout)

    # drain: the queue empties and nothing runs
    drained_after = None
    t0 = time.time()
    while time.time() - t0 < drain_timeout:
        g = gauges(url, model)
        if g.get("alignd_queue_depth", 0) == 0 and g.get("alignd_running_sequences", 0) == 0:
            drained_after = time.time() - t_clients_done
            break
        time.sleep(0.05)
    stop_sampling.set()
    st.join()
    after = idle_latency(url, body, idle_requests)

    lat = {}
    for r in results:
        for k, v in r["lat"].items():
            lat.setdefault(k, []).extend(v)
    counts = {k: len(v) for k, v in lat.items()}
    errors = sum(r["errors"] for r in results)
    sent = sum(counts.values()) + errors
    ok, r429, r503 = lat.get("200", []), lat.get("429", []), lat.get("503", [])
    other = {k: n for k, n in counts.items() if k not in ("200", "429", "503")}
    hl = hres["lat"]
    srv = access_log_latencies(access_log, start_at, t_clients_done) if access_log else {}
    s429, s200 = srv.get("429", []), srv.get("200", [])
    fig = {
        "seconds": seconds, "clients": clients, "procs": procs, "max_tokens": max_tokens,
        "sent": sent, "sent_per_s": sent / seconds,
        "status_200": len(ok), "status_429": len(r429), "status_503": len(r503),
        "status_other": other, "connection_errors": errors,
        "first_error": next((r["first_error"] for r in results if r["first_error"]), None),
        "bad_429": sum(r["bad_429"] for r in results),
        "bad_429_example": next((r["bad_429_example"] for r in results if r["bad_429_example"]), None),
        "share_429": len(r429) / sent if sent else float("nan"),
        "admitted_per_s": len(ok) / seconds,
        "lat_429_p50_ms": percentile(r429, 50) * 1e3, "lat_429_p99_ms": percentile(r429, 99) * 1e3,
        "lat_429_max_ms": (max(r429) if r429 else float("nan")) * 1e3,
        "lat_200_p50_ms": percentile(ok, 50) * 1e3, "lat_200_p99_ms": percentile(ok, 99) * 1e3,
        "server_429_p50_ms": percentile(s429, 50) * 1e3, "server_429_p99_ms": percentile(s429, 99) * 1e3,
        "server_200_p50_ms": percentile(s200, 50) * 1e3, "server_200_p99_ms": percentile(s200, 99) * 1e3,
        "health_probes": len(hl) + len(hres["failed"]), "health_failed": hres["failed"],
        "health_p50_ms": percentile(hl, 50) * 1e3, "health_p99_ms": percentile(hl, 99) * 1e3,
        "health_max_ms": (max(hl) if hl else float("nan")) * 1e3,
        "rss_idle_kb": rss_idle,
        "rss_max_kb": max(samples["rss"]) if samples["rss"] else None,
        "vm_hwm_kb": read_status_kb(pid, "VmHWM") if pid else None,
        "queue_depth_max": max(samples["queue"]) if samples["queue"] else None,
        "kv_blocks_used_max": max(samples["kv"]) if samples["kv"] else None,
        "running_max": max(samples["running"]) if samples["running"] else None,
        "drained_after_s": drained_after,
        "idle_before_ms": statistics.median(before) * 1e3, "idle_after_ms": statistics.median(after) * 1e3,
    }
    fig["idle_after_over_before"] = fig["idle_after_ms"] / fig["idle_before_ms"]
    return fig


def print_table(f, out=sys.stdout):
    def ms(x):
        return f"{x:9.1f} ms"
    rows = [
        ("load", f"{f['seconds']:.0f} s, {f['clients']} clients in {f['procs']} processes, "
                 f"max_tokens {f['max_tokens']}"),
        ("requests sent", f"{f['sent']}  ({f['sent_per_s']:.0f}/s)"),
        ("200 (admitted)", f"{f['status_200']}  ({f['admitted_per_s']:.1f}/s)"),
        ("429 (queue full)", f"{f['status_429']}  ({100 * f['share_429']:.1f}% of sent)"),
        ("503", f"{f['status_503']}"),
        ("other statuses", f"{f['status_other'] or 0}"),
        ("connection errors", f"{f['connection_errors']}" + (f"  first: {f['first_error']}" if f['first_error'] else "")),
        ("429 w/o Retry-After/JSON", f"{f['bad_429']}"),
        ("429 latency p50/p99/max", f"{ms(f['lat_429_p50_ms'])} {ms(f['lat_429_p99_ms'])} {ms(f['lat_429_max_ms'])}"),
        ("admitted latency p50/p99", f"{ms(f['lat_200_p50_ms'])} {ms(f['lat_200_p99_ms'])}"),
        ("server-side 429 p50/p99", f"{ms(f['server_429_p50_ms'])} {ms(f['server_429_p99_ms'])}  (access log)"),
        ("server-side 200 p50/p99", f"{ms(f['server_200_p50_ms'])} {ms(f['server_200_p99_ms'])}"),
        ("/health p50/p99/max", f"{ms(f['health_p50_ms'])} {ms(f['health_p99_ms'])} {ms(f['health_max_ms'])}"
                                f"  ({f['health_probes']} probes, {len(f['health_failed'])} failed)"),
        ("RSS idle / max / VmHWM", " / ".join("-" if v is None else f"{v / 1024:.1f} MiB"
                                             for v in (f["rss_idle_kb"], f["rss_max_kb"], f["vm_hwm_kb"]))),
        ("max queue / running / KV blocks", f"{f['queue_depth_max']} / {f['running_max']} / {f['kv_blocks_used_max']}"),
        ("drained after clients stopped", "-" if f["drained_after_s"] is None else f"{f['drained_after_s']:.2f} s"),
        ("idle latency before / after", f"{ms(f['idle_before_ms'])} {ms(f['idle_after_ms'])}"
                                        f"  (x{f['idle_after_over_before']:.2f})"),
    ]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        out.write(f"{k:<{w}}  {v}\n")
    if f["health_failed"]:
        out.write(f"first /health failure: {f['health_failed'][0]}\n")
    if f["bad_429_example"]:
        out.write(f"first bad 429: {f['bad_429_example']}\n")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--_worker":
        url, n, start_at, stop_at, body, timeout = sys.argv[2:8]
        _worker(url, int(n), float(start_at), float(stop_at), json.loads(body), float(timeout))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--_health":
        url, start_at, stop_at, interval = sys.argv[2:6]
        _health(url, float(start_at), float(stop_at), float(interval))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", help="start this alignd (else --url)")
    ap.add_argument("--model", help="GGUF model to serve (with --binary)")
    ap.add_argument("--url", help="drive a running daemon instead")
    ap.add_argument("--model-name", default="m", help="model name in requests (with --url)")
    ap.add_argument("--pid", type=int, help="the running daemon's pid, for its memory (with --url)")
    ap.add_argument("--access-log", help="the running daemon's log file, for server-side latencies (with --url)")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--procs", type=int, default=2, help="client processes (threads are spread over them)")
    ap.add_argument("--max-tokens", type=int, default=100)
    ap.add_argument("--eos", type=int, default=2, help="EOS token id to ban so every request runs to max_tokens")
    ap.add_argument("--max-seqs", type=int, default=4, help="model.max_seqs of the started daemon")
    ap.add_argument("--queue-size", type=int, default=8, help="model.queue_size of the started daemon")
    ap.add_argument("--n-ctx", type=int, default=128, help="model.n_ctx of the started daemon")
    ap.add_argument("--flag", action="append", default=[], help="extra flag for the started daemon (repeatable)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    a = ap.parse_args()
    if bool(a.binary) == bool(a.url):
        ap.error("give --binary (with --model) or --url")
    if a.url:
        fig = run(a.url, a.model_name, a.pid, a.seconds, a.clients, a.procs, a.max_tokens, a.eos,
                  access_log=a.access_log)
        fig["daemon"] = a.url
    else:
        if not a.model:
            ap.error("--binary needs --model")
        sys.path.insert(0, os.path.join(HERE, "..", "tests", "http"))
        import alignd_harness as H
        H.BINARY = os.path.abspath(a.binary)
        flags = ["--model", f"m={a.model}", f"--model.m.max_seqs={a.max_seqs}",
                 f"--model.m.queue_size={a.queue_size}", f"--model.m.n_ctx={a.n_ctx}",
                 "--training.enabled=false", "--log.level=info", *a.flag]
        with H.Daemon(*flags) as d:
            fig = run(f"http://127.0.0.1:{d.port}", "m", d.proc.pid, a.seconds, a.clients, a.procs,
                      a.max_tokens, a.eos, access_log=d.log_path)
            alive = d.proc.poll() is None and d.request("GET", "/health")[0] == 200
        fig["daemon"] = " ".join(flags)
        fig["daemon_alive_after"] = alive
    if a.json:
        print(json.dumps(fig))
    else:
        print(f"# {fig['daemon']}")
        print_table(fig)
        if "daemon_alive_after" in fig:
            print(f"daemon alive and healthy after the run: {fig['daemon_alive_after']}")


if __name__ == "__main__":
    main()

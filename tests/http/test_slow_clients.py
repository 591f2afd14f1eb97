#!/usr/bin/env python3
"""Slow and broken clients against the real daemon: none may hold a
connection, a sequence or KV blocks past the configured timeouts, and none
may hold up other clients.

- slowloris: connections sending their headers a byte at a time, each byte
  well within server.connection_timeout (so an idle timer alone never fires):
  dropped once the request has not arrived whole after the timeout, while a
  normal client is served at once; and when they take every connection slot
  (server.max_connections), a waiting client is served once they are dropped
- a partial body (Content-Length larger than what is sent), silent or
  trickled a byte at a time: dropped after the timeout, the request freed
- a streaming completion whose client never reads: once the socket buffers
  are full the server drops it after the timeout, cancels its sequences and
  frees their KV blocks; other clients are served meanwhile
- many clients cutting their streams at once (TCP reset) mid-SSE: the daemon
  stays healthy and every sequence and KV block is freed
- the same with non-streamed completions, whose connections wait suspended
  for their answer: the daemon notices at once and stops generating

Resources are read from /metrics (alignd_running_sequences, alignd_queue_depth,
alignd_kv_blocks_used, alignd_http_requests_in_flight, and
alignd_requests_finished_total{reason="cancelled"}). The model tests use
stories260K (../shared/models) and skip loudly without it.
"""
import json
import os
import re
import select
import socket
import struct
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import alignd_harness as H  # noqa: E402

SHARED = os.path.join(HERE, "..", "..", "..", "shared")
MODEL = os.path.join(SHARED, "models", "stories260K.gguf")
TIMEOUT = 2   # server.connection_timeout in these tests
SLACK = 3.0   # seconds allowed past a deadline on a busy machine


def metric(text, name, labels='model="stories"'):
    m = re.search(r"^%s\{%s\} (\d+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return int(m.group(1)) if m else None


def in_flight(d):
    m = d.request("GET", "/metrics")[2].decode()
    return int(re.search(r"^alignd_http_requests_in_flight (\d+)$", m, re.M).group(1)) - 1  # minus this one


def wait_for(pred, seconds, step=0.05):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Trickler:
    """Sockets that each send `head` at once, then `tail` one byte every
    `every` seconds (from a thread), and notes when the server closes each."""

    def __init__(self, port, n, head, tail, every=0.2):
        self.socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
        self.t0 = time.time()
        self.closed_at = [None] * n
        self.got = [b""] * n
        for s in self.socks:
            s.setblocking(False)
            s.sendall(head)
        self.tail, self.every = tail, every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _closed(self, i):
        if self.closed_at[i] is None:
            self.closed_at[i] = time.time() - self.t0

    def _run(self):
        k = 0
        while not self.stop.is_set() and None in self.closed_at:
            for i, s in enumerate(self.socks):
                if self.closed_at[i] is not None:
                    continue
                r, _, _ = select.select([s], [], [], 0)
                if r:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    self.got[i] += data
                    if not data:
                        self._closed(i)
                        continue
                if not self.tail:
                    continue
                try:
                    s.send(self.tail[k % len(self.tail):k % len(self.tail) + 1])
                except BlockingIOError:
                    pass
                except OSError:
                    self._closed(i)
            k += 1
            self.stop.wait(self.every)

    def all_closed(self):
        return None not in self.closed_at

    def close(self):
        self.stop.set()
        self.thread.join()
        for s in self.socks:
            s.close()


SLOW_HEAD = b"GET /health HTTP/1.1\r\nHost: x\r\n"
SLOW_TAIL = b"X-Slow: " + b"z" * 4000 + b"\r\n"  # header bytes, never the blank line


class SlowRequests(unittest.TestCase):
    """No model needed."""

    def test_slowloris_dropped_others_served(self):
        with H.Daemon(f"--server.connection_timeout={TIMEOUT}") as d:
            tr = Trickler(d.port, 32, SLOW_HEAD, SLOW_TAIL)
            try:
                for _ in range(3):  # served at once while 32 connections dribble
                    time.sleep(0.3)
                    t0 = time.time()
                    self.assertEqual(d.request("GET", "/health", timeout=5)[0], 200)
                    self.assertLess(time.time() - t0, 1.0)
                # each byte comes within the idle timeout, yet all are dropped
                self.assertTrue(wait_for(tr.all_closed, TIMEOUT + SLACK + 3), tr.closed_at)
                self.assertLess(max(tr.closed_at), TIMEOUT + SLACK, tr.closed_at)
                self.assertGreater(min(tr.closed_at), TIMEOUT - 0.5, tr.closed_at)
                self.assertEqual(tr.got, [b""] * 32)  # dropped, not answered
            finally:
                tr.close()
            self.assertEqual(d.request("GET", "/health")[0], 200)
            self.assertEqual(in_flight(d), 0)

    def test_slowloris_taking_every_slot(self):
        # 8 dribbling connections take all of server.max_connections=8: a
        # normal client waits in the backlog only until they are dropped
        with H.Daemon(f"--server.connection_timeout={TIMEOUT}", "--server.max_connections=8") as d:
            tr = Trickler(d.port, 8, SLOW_HEAD, SLOW_TAIL)
            try:
                time.sleep(0.3)
                t0 = time.time()
                status = d.request("GET", "/health", timeout=TIMEOUT + SLACK + 10)[0]
                waited = time.time() - t0
                self.assertEqual(status, 200)
                self.assertLess(waited, TIMEOUT + SLACK)
                self.assertTrue(wait_for(tr.all_closed, SLACK), tr.closed_at)
            finally:
                tr.close()

    def test_partial_body_dropped(self):
        with H.Daemon("--server.debug_routes=true", f"--server.connection_timeout={TIMEOUT}") as d:
            head = (b"POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 60000\r\n\r\n")
            silent = Trickler(d.port, 4, head + b'{"message": "', b"", every=0.2)  # then nothing
            dribble = Trickler(d.port, 4, head + b'{"message": "', b"x" * 60000, every=0.2)
            try:
                time.sleep(0.3)
                self.assertEqual(in_flight(d), 8)  # headers in: 8 requests wait for their bodies
                t0 = time.time()
                s, _, b = d.json("POST", "/debug/echo", {"message": "normal"}, timeout=5)
                self.assertEqual((s, b["message"]), (200, "normal"))
                self.assertLess(time.time() - t0, 1.0)
                for tr in (silent, dribble):
                    self.assertTrue(wait_for(tr.all_closed, TIMEOUT + SLACK + 3), tr.closed_at)
                    self.assertLess(max(tr.closed_at), TIMEOUT + SLACK, tr.closed_at)
                    self.assertGreater(min(tr.closed_at), TIMEOUT - 0.5, tr.closed_at)
            finally:
                silent.close()
                dribble.close()
            self.assertTrue(wait_for(lambda: in_flight(d) == 0, 5))
            self.assertEqual(d.request("GET", "/health")[0], 200)


def stories(*flags):
    return H.Daemon("--model", f"stories={MODEL}", "--training.enabled=false", *flags)


def stream_request(body):
    data = json.dumps(body).encode()
    return (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(data), data))


class SlowStreams(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(MODEL):
            print("\n*** SKIPPED: ../shared/models/stories260K.gguf is absent ***", file=sys.stderr)
            self.skipTest("../shared absent")

    def test_stream_never_read(self):
        # 16 choices x 2000 tokens with 20 logprobs each: about 18 MB of
        # events, far more than the socket buffers hold (tcp_wmem's maximum
        # is 4 MiB by default), for a client that reads nothing. The stream
        # stalls after some 5,000 tokens; with a timeout of 1 s the rest
        # would need a machine ten times faster than a 2-core VM to finish
        n, max_tokens, timeout = 16, 2000, 1
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            wmem_max = int(f.read().split()[2])
        with stories("--model.stories.n_ctx=2048", "--model.stories.max_seqs=20",
                     f"--server.connection_timeout={timeout}") as d:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", d.port))
            s.sendall(stream_request({"model": "stories", "prompt": "Once upon a time", "n": n,
                                      "max_tokens": max_tokens, "temperature": 1.0, "stream": True,
                                      "logprobs": 20, "logit_bias": {"2": -100}}))
            t0 = time.time()
            try:
                self.assertTrue(wait_for(lambda: metric(d.request("GET", "/metrics")[2].decode(),
                                                        "alignd_running_sequences") == n, 10))
                # other clients are served meanwhile (4 free sequence slots)
                for _ in range(3):
                    t1 = time.time()
                    st, _, b = d.json("POST", "/v1/completions", {"model": "stories", "prompt": "Lily",
                                                                  "max_tokens": 8}, timeout=30)
                    self.assertEqual(st, 200, b)
                    self.assertLess(time.time() - t1, 5.0)
                    self.assertEqual(d.request("GET", "/health")[0], 200)

                def idle():
                    m = d.request("GET", "/metrics")[2].decode()
                    return (metric(m, "alignd_running_sequences"), metric(m, "alignd_kv_blocks_used")) == (0, 0)
                self.assertTrue(wait_for(idle, 60), "the unread stream kept its sequences")
                freed_after = time.time() - t0
                self.assertTrue(wait_for(lambda: in_flight(d) == 0, timeout + SLACK))
                m = d.request("GET", "/metrics")[2].decode()
                generated = metric(m, "alignd_generated_tokens_total") - 3 * 8
                cancelled = metric(m, "alignd_requests_finished_total", 'model="stories",reason="cancelled"')
                sys.stderr.write(f"\n  unread stream: resources freed after {freed_after:.1f} s, "
                                 f"{generated} of {n * max_tokens} tokens generated, {cancelled} cancelled\n")
                if wmem_max <= 8 << 20:
                    # the stream stalled: dropped after the timeout, not run to the end
                    self.assertEqual(cancelled, n)
                    self.assertLess(generated, n * max_tokens)
                    statuses = [l["status"] for l in d.access_lines() if l["path"] == "/v1/completions"]
                    self.assertEqual(sorted(statuses), [200, 200, 200, 499])
                else:
                    print(f"\n*** tcp_wmem max {wmem_max}: the buffers may hold the whole stream; "
                          f"only the release of its resources is checked ***", file=sys.stderr)
                # the server closed the connection: what was sent, then EOF
                s.settimeout(10)
                while s.recv(1 << 20):
                    pass
            finally:
                s.close()

    def test_abrupt_disconnects_mid_sse(self):
        # 24 streams, 16 running and 8 queued, all reset at once mid-stream
        n_run, n_queued, max_tokens = 16, 8, 1000
        with stories("--model.stories.n_ctx=1024", f"--model.stories.max_seqs={n_run}") as d:
            body = stream_request({"model": "stories", "prompt": "Once upon a time", "max_tokens": max_tokens,
                                   "temperature": 1.0, "stream": True, "logit_bias": {"2": -100}})
            socks = []
            for _ in range(n_run + n_queued):
                s = socket.create_connection(("127.0.0.1", d.port))
                s.sendall(body)
                socks.append(s)
            got = [b""] * len(socks)
            deadline = time.time() + 20
            while time.time() < deadline:  # every stream started; 16 with two events or more
                r, _, _ = select.select(socks, [], [], 0.1)
                for s in r:
                    i = socks.index(s)
                    got[i] += s.recv(65536)
                if (all(b"200 OK" in g for g in got)
                        and sum(g.count(b"data: ") >= 2 for g in got) >= n_run):
                    break
            self.assertTrue(all(b"200 OK" in g for g in got))
            self.assertGreaterEqual(sum(g.count(b"data: ") >= 2 for g in got), n_run)
            self.assertFalse(any(b"[DONE]" in g for g in got))  # mid-stream
            for s in socks:  # TCP reset, all at once
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            t0 = time.time()
            self.assertEqual(d.request("GET", "/health", timeout=5)[0], 200)
            self.assertLess(time.time() - t0, 1.0)
            st, _, b = d.json("POST", "/v1/completions", {"model": "stories", "prompt": "Lily", "max_tokens": 8},
                              timeout=30)
            self.assertEqual(st, 200, b)

            def idle():
                m = d.request("GET", "/metrics")[2].decode()
                return (metric(m, "alignd_running_sequences"), metric(m, "alignd_queue_depth"),
                        metric(m, "alignd_kv_blocks_used")) == (0, 0, 0)
            self.assertTrue(wait_for(idle, 20), d.request("GET", "/metrics")[2].decode())
            self.assertTrue(wait_for(lambda: in_flight(d) == 0, 5))
            m = d.request("GET", "/metrics")[2].decode()
            self.assertEqual(metric(m, "alignd_requests_finished_total", 'model="stories",reason="cancelled"'),
                             n_run + n_queued)
            self.assertLess(metric(m, "alignd_generated_tokens_total"), (n_run + n_queued) * max_tokens // 2)
            statuses = [l["status"] for l in d.access_lines() if l["path"] == "/v1/completions"]
            self.assertEqual(sorted(statuses), [200] + [499] * (n_run + n_queued))
            self.assertIsNone(d.proc.poll())

    def test_abrupt_disconnects_non_streamed(self):
        # the same for answers given in one piece: their connections wait
        # suspended, and the daemon must see the clients leave (and stop
        # generating for nobody) before the answers are ready
        n_run, n_queued, max_tokens = 8, 4, 1000
        with stories("--model.stories.n_ctx=1024", f"--model.stories.max_seqs={n_run}") as d:
            body = stream_request({"model": "stories", "prompt": "Once upon a time", "max_tokens": max_tokens,
                                   "temperature": 1.0, "logit_bias": {"2": -100}})
            socks = []
            for _ in range(n_run + n_queued):
                s = socket.create_connection(("127.0.0.1", d.port))
                s.sendall(body)
                socks.append(s)

            def gauges():
                m = d.request("GET", "/metrics")[2].decode()
                return (metric(m, "alignd_running_sequences"), metric(m, "alignd_queue_depth"),
                        metric(m, "alignd_kv_blocks_used"))
            self.assertTrue(wait_for(lambda: gauges()[:2] == (n_run, n_queued), 10), gauges())
            for s in socks:  # TCP reset, all at once
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            t0 = time.time()
            # a generation of 8 x 1000 tokens takes seconds here: freed well before
            self.assertTrue(wait_for(lambda: gauges() == (0, 0, 0), 10), gauges())
            freed_after = time.time() - t0
            self.assertTrue(wait_for(lambda: in_flight(d) == 0, 5))
            m = d.request("GET", "/metrics")[2].decode()
            generated = metric(m, "alignd_generated_tokens_total")
            sys.stderr.write(f"\n  reset non-streamed requests: freed after {freed_after:.2f} s, "
                             f"{generated} of {(n_run + n_queued) * max_tokens} tokens generated\n")
            self.assertEqual(metric(m, "alignd_requests_finished_total", 'model="stories",reason="cancelled"'),
                             n_run + n_queued)
            self.assertLess(generated, n_run * max_tokens // 2)
            statuses = [l["status"] for l in d.access_lines() if l["path"] == "/v1/completions"]
            self.assertEqual(statuses, [499] * (n_run + n_queued))
            st, _, b = d.json("POST", "/v1/completions", {"model": "stories", "prompt": "Lily", "max_tokens": 8},
                              timeout=30)
            self.assertEqual(st, 200, b)


if __name__ == "__main__":
    H.main(globals())

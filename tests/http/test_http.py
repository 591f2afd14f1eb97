#!/usr/bin/env python3
"""HTTP integration tests: the real daemon on a loopback port.

Covers status codes and error bodies, headers (X-Request-Id, Allow,
Retry-After), body limits, auth, the asynchronous path (a reply completed
later by another thread, SSE streams), metrics, access log and SIGHUP,
connection limits and timeouts, graceful shutdown, and configuration errors.
"""
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402

DEBUG = "--server.debug_routes=true"


def assert_error(tc, status, body, want_status, want_code, want_in_message=None):
    tc.assertEqual(status, want_status, body)
    tc.assertIsInstance(body, dict)
    err = body["error"]
    tc.assertEqual(set(err), {"message", "type", "param", "code"})
    tc.assertEqual(err["code"], want_code)
    if want_in_message:
        tc.assertIn(want_in_message, err["message"])


def parse_sse(raw):
    """Splits an SSE body into [(event, data)], checking the framing."""
    text = raw.decode()
    tc_events = []
    assert text.endswith("\n\n"), repr(text[-20:])
    for block in text.split("\n\n")[:-1]:
        event, data = None, []
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
            else:
                raise AssertionError(f"bad SSE line {line!r}")
        tc_events.append((event, "\n".join(data)))
    return tc_events


class Basics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = H.Daemon(DEBUG).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def test_health_ready_models(self):
        s, h, b = self.d.json("GET", "/health")
        self.assertEqual((s, b), (200, {"status": "ok"}))
        self.assertEqual(h["content-type"], "application/json")
        s, _, b = self.d.json("GET", "/ready")
        self.assertEqual((s, b), (200, {"status": "ready"}))
        s, _, b = self.d.json("GET", "/v1/models")
        self.assertEqual((s, b), (200, {"object": "list", "data": []}))
        s, _, b = self.d.json("GET", "/v1/models/llama")
        assert_error(self, s, b, 404, "model_not_found", "llama")
        self.assertEqual(b["error"]["param"], "model")

    def test_request_id(self):
        _, h, _ = self.d.request("GET", "/health")
        self.assertRegex(h["x-request-id"], r"^[0-9a-f]{8}-[0-9a-f]{6}$")
        _, h2, _ = self.d.request("GET", "/health")
        self.assertNotEqual(h["x-request-id"], h2["x-request-id"])
        _, h, _ = self.d.request("GET", "/health", headers={"X-Request-Id": "client-42"})
        self.assertEqual(h["x-request-id"], "client-42")
        _, h, _ = self.d.request("GET", "/health", headers={"X-Request-Id": "bad id\x01"})
        self.assertNotEqual(h["x-request-id"], "bad id\x01")

    def test_not_found_and_method(self):
        s, _, b = self.d.json("GET", "/nope")
        assert_error(self, s, b, 404, "not_found", "/nope")
        s, h, b = self.d.json("DELETE", "/v1/models")
        assert_error(self, s, b, 405, "method_not_allowed")
        self.assertEqual(h["allow"], "GET, HEAD")
        s, h, b = self.d.request("HEAD", "/health")
        self.assertEqual((s, b), (200, b""))
        self.assertEqual(h["content-length"], "15")

    def test_bad_json_and_types(self):
        s, _, b = self.d.request("POST", "/debug/echo", b"{not json",
                                 {"Content-Type": "application/json"})
        assert_error(self, s, json.loads(b), 400, "invalid_json", "line 1")
        s, _, b = self.d.request("POST", "/debug/echo", b"", {"Content-Type": "application/json"})
        assert_error(self, s, json.loads(b), 400, "invalid_json", "empty")
        s, _, b = self.d.request("POST", "/debug/echo", b'{"a":1,"a":2}',
                                 {"Content-Type": "application/json"})
        assert_error(self, s, json.loads(b), 400, "invalid_json", "duplicate")
        s, _, b = self.d.request("POST", "/debug/echo", b'{"message":1}',
                                 {"Content-Type": "text/plain"})
        assert_error(self, s, json.loads(b), 415, "unsupported_media_type", "text/plain")
        s, _, b = self.d.json("POST", "/debug/echo", {"delay_ms": 1})
        assert_error(self, s, b, 400, "invalid_request", "message")
        self.assertEqual(b["error"]["param"], "message")
        s, _, b = self.d.json("POST", "/debug/echo", {"message": "x", "delay_ms": -5})
        assert_error(self, s, b, 422, "invalid_value", "delay_ms")
        s, _, b = self.d.json("POST", "/debug/echo", {"message": "x", "delay_ms": "soon"})
        assert_error(self, s, b, 400, "invalid_request", "integer")
        s, _, b = self.d.json("GET", "/debug/sse?count=lots")
        assert_error(self, s, b, 422, "invalid_value", "count")
        # charset parameter is fine
        s, _, b = self.d.request("POST", "/debug/echo", b'{"message":"ok"}',
                                 {"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(s, 200, b)

    def test_body_limits(self):
        # /debug/echo has a 64 KiB route limit; the server default is 1 MiB
        big = json.dumps({"message": "x" * 70000}).encode()
        s, h, b = self.d.request("POST", "/debug/echo", big, {"Content-Type": "application/json"})
        assert_error(self, s, json.loads(b), 413, "request_too_large", "65536")
        ok = json.dumps({"message": "y" * 60000}).encode()
        s, _, b = self.d.request("POST", "/debug/echo", ok, {"Content-Type": "application/json"})
        self.assertEqual(s, 200)
        self.assertEqual(json.loads(b)["message"], "y" * 60000)
        # chunked upload without Content-Length: cut at the limit as well
        conn = self.d.connect()
        conn.putrequest("POST", "/debug/echo")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for i in range(0, len(big), 8192):
            piece = big[i:i + 8192]
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
        r = conn.getresponse()
        assert_error(self, r.status, json.loads(r.read()), 413, "request_too_large")
        conn.close()

    def test_deferred_reply_from_worker(self):
        t0 = time.time()
        s, _, b = self.d.json("POST", "/debug/echo", {"message": {"k": [1, 2]}, "delay_ms": 300})
        self.assertEqual((s, b), (200, {"message": {"k": [1, 2]}, "delay_ms": 300}))
        self.assertGreaterEqual(time.time() - t0, 0.29)
        # while replies wait, the loop keeps serving other requests
        with concurrent.futures.ThreadPoolExecutor(12) as ex:
            slow = [ex.submit(self.d.json, "POST", "/debug/echo", {"message": i, "delay_ms": 800})
                    for i in range(10)]
            time.sleep(0.1)
            t1 = time.time()
            s, _, _ = self.d.json("GET", "/health")
            self.assertEqual(s, 200)
            self.assertLess(time.time() - t1, 0.5)
            got = sorted(f.result()[2]["message"] for f in slow)
        self.assertEqual(got, list(range(10)))
        self.assertLess(time.time() - t1, 5.0)  # in parallel, not 10 x 0.8 s in a row

    def test_sse_stream(self):
        conn = self.d.connect()
        conn.request("GET", "/debug/sse?count=5&interval_ms=20")
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        self.assertTrue(r.getheader("Content-Type").startswith("text/event-stream"))
        self.assertEqual(r.getheader("Transfer-Encoding"), "chunked")
        self.assertEqual(r.getheader("Cache-Control"), "no-cache")
        events = parse_sse(r.read())
        conn.close()
        self.assertEqual(events, [("tick", json.dumps({"n": i}, separators=(",", ":")))
                                  for i in range(5)] + [(None, "[DONE]")])
        # zero events: only the end marker
        s, _, b = self.d.request("GET", "/debug/sse?count=0")
        self.assertEqual(parse_sse(b), [(None, "[DONE]")])

    def test_sse_client_disconnect(self):
        # a client that leaves mid-stream must not hurt the daemon
        sock = socket.create_connection(("127.0.0.1", self.d.port))
        sock.sendall(b"GET /debug/sse?count=1000&interval_ms=5 HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"200 OK", sock.recv(4096))
        sock.close()
        time.sleep(0.3)
        s, _, _ = self.d.json("GET", "/health")
        self.assertEqual(s, 200)
        lines = [l for l in self.d.access_lines() if l["path"] == "/debug/sse"]
        deadline = time.time() + 5
        while not any(l["status"] == 499 for l in lines) and time.time() < deadline:
            time.sleep(0.1)
            lines = [l for l in self.d.access_lines() if l["path"] == "/debug/sse"]
        self.assertTrue(any(l["status"] == 499 for l in lines), lines)

    def test_metrics(self):
        self.d.json("GET", "/v1/models")
        self.d.json("GET", "/definitely-missing")
        s, h, b = self.d.request("GET", "/metrics")
        self.assertEqual(s, 200)
        self.assertEqual(h["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        text = b.decode()
        self.assertRegex(text, r'alignd_http_requests_total\{route="/v1/models",method="GET",status="200"\} \d+')
        self.assertRegex(text, r'alignd_http_requests_total\{route="unmatched",method="GET",status="404"\} \d+')
        self.assertRegex(text, r'alignd_http_request_duration_seconds_bucket\{route="/v1/models",method="GET",le="\+Inf"\} \d+')
        self.assertRegex(text, r"\nalignd_http_requests_in_flight 1\n")  # this request
        self.assertRegex(text, r"\nprocess_start_time_seconds \d+\.\d+\n")
        self.assertRegex(text, r'\nalignd_build_info\{version="[^"]+",commit="[^"]+"\} 1\n')
        for line in text.splitlines():  # every sample line is name{labels} value
            if not line.startswith("#"):
                self.assertRegex(line, r'^[a-z_]+(\{([a-z_]+="[^"]*",?)+\})? [0-9.e+-]+$')

    def test_access_log(self):
        self.d.request("GET", "/v1/models", headers={"X-Request-Id": "log-me-1"})
        time.sleep(0.1)
        lines = [l for l in self.d.access_lines() if l.get("request_id") == "log-me-1"]
        self.assertEqual(len(lines), 1)
        l = lines[0]
        self.assertEqual((l["method"], l["path"], l["route"], l["status"]),
                         ("GET", "/v1/models", "/v1/models", 200))
        self.assertEqual(l["bytes"], len(b'{"object":"list","data":[]}'))
        self.assertGreaterEqual(l["duration_ms"], 0)
        self.assertRegex(l["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Auth(unittest.TestCase):
    def test_keys(self):
        with H.Daemon(DEBUG, "--server.api_keys=k1,k2-secret") as d:
            s, h, b = d.json("GET", "/v1/models")
            assert_error(self, s, b, 401, "invalid_api_key")
            self.assertEqual(h["www-authenticate"], "Bearer")
            s, _, b = d.json("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})
            assert_error(self, s, b, 401, "invalid_api_key")
            s, _, b = d.json("GET", "/v1/models", headers={"Authorization": "Bearer k2-secre"})
            assert_error(self, s, b, 401, "invalid_api_key")
            s, _, _ = d.json("GET", "/v1/models", headers={"Authorization": "Bearer k2-secret"})
            self.assertEqual(s, 200)
            # 401 comes before body checks: a wrong key learns nothing else
            s, _, b = d.request("POST", "/debug/echo", b"junk", {"Content-Type": "text/plain"})
            self.assertEqual(s, 401)
            # health, ready and metrics are open by default
            for path in ("/health", "/ready", "/metrics"):
                self.assertEqual(d.request("GET", path)[0], 200, path)
            self.assertNotIn("k2-secret", d.log())

    def test_closed_health_and_metrics(self):
        with H.Daemon("--server.api_keys=k1", "--server.public_metrics=false",
                      "--server.public_health=false") as d:
            for path in ("/health", "/ready", "/metrics"):
                self.assertEqual(d.request("GET", path)[0], 401, path)
                self.assertEqual(d.request("GET", path, headers={"Authorization": "Bearer k1"})[0],
                                 200, path)

    def test_key_file_and_env(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".keys", delete=False) as f:
            f.write("# team keys\nfrom-file\n")
        try:
            with H.Daemon(f"--server.api_key_file={f.name}",
                          env={"ALIGND_SERVER_API_KEYS": "from-env"}) as d:
                for key in ("from-file", "from-env"):
                    s, _, _ = d.json("GET", "/v1/models", headers={"Authorization": f"Bearer {key}"})
                    self.assertEqual(s, 200, key)
        finally:
            os.unlink(f.name)


class Limits(unittest.TestCase):
    def test_queue_full_429(self):
        with H.Daemon(DEBUG, "--server.debug_queue_size=2") as d:
            with concurrent.futures.ThreadPoolExecutor(4) as ex:
                slow = [ex.submit(d.json, "POST", "/debug/echo", {"message": i, "delay_ms": 1500})
                        for i in range(2)]
                time.sleep(0.4)
                s, h, b = d.json("POST", "/debug/echo", {"message": "third"})
                assert_error(self, s, b, 429, "queue_full")
                self.assertEqual(h["retry-after"], "1")
                self.assertEqual([f.result()[0] for f in slow], [200, 200])
            s, _, _ = d.json("POST", "/debug/echo", {"message": "later"})
            self.assertEqual(s, 200)

    def test_slow_client_dropped(self):
        with H.Daemon("--server.connection_timeout=1") as d:
            sock = socket.create_connection(("127.0.0.1", d.port))
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # headers never finish
            sock.settimeout(6)
            t0 = time.time()
            data = sock.recv(4096)
            self.assertEqual(data, b"")  # closed by the server
            self.assertLess(time.time() - t0, 5)
            sock.close()
            self.assertEqual(d.request("GET", "/health")[0], 200)

    def test_connection_limit(self):
        # beyond max_connections a connection is not served: it waits (in the
        # kernel's backlog) until a slot frees
        with H.Daemon("--server.max_connections=2") as d:
            held = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(2)]
            time.sleep(0.2)
            extra = socket.create_connection(("127.0.0.1", d.port))
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            extra.settimeout(1.0)
            with self.assertRaises(socket.timeout):
                extra.recv(4096)
            for s in held:
                s.close()
            extra.settimeout(5)
            self.assertIn(b"200 OK", extra.recv(4096))
            extra.close()


class Shutdown(unittest.TestCase):
    def test_graceful_finishes_in_flight(self):
        d = H.Daemon(DEBUG, "--server.shutdown_grace=10").__enter__()
        try:
            keep = d.connect()  # a keep-alive connection opened before the signal
            keep.request("GET", "/health")
            keep.getresponse().read()
            result = {}
            t = threading.Thread(target=lambda: result.update(
                r=d.json("POST", "/debug/echo", {"message": "finish me", "delay_ms": 1200})))
            t.start()
            time.sleep(0.3)
            d.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            with self.assertRaises(OSError):  # no new connections
                d.request("GET", "/health", timeout=2)
            keep.request("GET", "/ready")  # old connection: told we are going away
            r = keep.getresponse()
            body = json.loads(r.read())
            assert_error(self, r.status, body, 503, "shutting_down")
            self.assertEqual(r.getheader("Connection"), "close")
            t.join(10)
            s, _, b = result["r"]
            self.assertEqual((s, b["message"]), (200, "finish me"))
            self.assertEqual(d.proc.wait(10), 0)
            self.assertIn("all requests finished", d.log())
        finally:
            d.__exit__(None, None, None)

    def test_grace_expires(self):
        d = H.Daemon(DEBUG, "--server.shutdown_grace=1").__enter__()
        try:
            result = {}
            t = threading.Thread(target=lambda: result.update(
                r=d.json("POST", "/debug/echo", {"message": "too slow", "delay_ms": 20000})))
            t.start()
            time.sleep(0.3)
            t0 = time.time()
            d.proc.send_signal(signal.SIGTERM)
            self.assertEqual(d.proc.wait(10), 0)
            self.assertLess(time.time() - t0, 5)
            t.join(10)
            s, _, b = result["r"]
            assert_error(self, s, b, 503, "shutting_down")
        finally:
            d.__exit__(None, None, None)

    def test_sigint_idle_and_sighup_reopens_log(self):
        d = H.Daemon().__enter__()
        try:
            d.request("GET", "/health", headers={"X-Request-Id": "before-rotate"})
            rotated = d.log_path + ".1"
            os.rename(d.log_path, rotated)
            d.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 5
            while not os.path.exists(d.log_path) and time.time() < deadline:
                time.sleep(0.05)
            d.request("GET", "/health", headers={"X-Request-Id": "after-rotate"})
            time.sleep(0.1)
            with open(rotated) as f:
                old = f.read()
            self.assertIn("before-rotate", old)
            self.assertNotIn("after-rotate", old)
            self.assertIn("after-rotate", d.log())
            self.assertEqual(d.stop(signal.SIGINT), 0)
        finally:
            d.__exit__(None, None, None)


class Config(unittest.TestCase):
    def run_bin(self, *args, env=None):
        return subprocess.run([H.BINARY, *args], capture_output=True, text=True, timeout=20,
                              env=dict(os.environ, **(env or {})))

    def test_invalid_values_exit_2(self):
        cases = [(["--server.port=abc"], None, "server.port"),
                 (["--server.nosuch=1"], None, "--server.nosuch"),
                 ([], {"ALIGND_SERVER_PORT": "70000"}, "ALIGND_SERVER_PORT"),
                 (["--config", "/nonexistent.ini"], None, "/nonexistent.ini"),
                 (["frobnicate"], None, "frobnicate")]
        for args, env, want in cases:
            r = self.run_bin(*args, env=env)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn(want, r.stderr)

    def test_print_config_and_help(self):
        r = self.run_bin("--print-config", "--server.port=9999",
                         env={"ALIGND_LOG_LEVEL": "warn"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("port = 9999 ; flag --server.port", r.stdout)
        self.assertIn("level = warn ; env ALIGND_LOG_LEVEL", r.stdout)
        r = self.run_bin("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--server.max_body_size", r.stdout)

    def test_tokenize_command(self):
        shared = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared")
        model = os.path.join(shared, "models", "stories260K.gguf")
        if not os.path.exists(model):
            print("\n*** SKIPPED: ../shared/models/stories260K.gguf is absent ***", file=sys.stderr)
            self.skipTest("../shared absent")
        with open(os.path.join(shared, "models", "stories260K.reference.json")) as f:
            ref = json.load(f)
        for case in ref:
            args = ["tokenize", "-m", model, case["prompt"]]
            if not case["add_bos"]:
                args.insert(1, "--no-special")
            r = self.run_bin(*args)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual([int(x) for x in r.stdout.split()], case["token_ids"])
        r = self.run_bin("tokenize", "-m", "/nonexistent.gguf", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn("/nonexistent.gguf", r.stderr)
        self.assertEqual(self.run_bin("tokenize", "x").returncode, 2)

    def test_generate_command(self):
        shared = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared")
        model = os.path.join(shared, "models", "stories260K.gguf")
        if not os.path.exists(model):
            print("\n*** SKIPPED: ../shared/models/stories260K.gguf is absent ***", file=sys.stderr)
            self.skipTest("../shared absent")
        with open(os.path.join(shared, "models", "stories260K.reference.json")) as f:
            ref = json.load(f)
        for case in ref:  # llama.cpp's greedy 32-token continuations
            args = ["generate", "-m", model, "-p", case["prompt"], "-n", "32", "--ignore-eos"]
            if not case["add_bos"]:
                args.append("--no-special")
            r = self.run_bin(*args)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, case["greedy_text_32"] + "\n")
            self.assertRegex(r.stderr, r"generated 32 tokens in [0-9.]+ ms \([0-9.]+ tokens/s\)")
        r = self.run_bin("generate", "-m", model, "-p", "x", "--temp", "3")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--temp", r.stderr)

    def test_port_in_use(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            r = self.run_bin(f"--server.port={port}")
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"port {port}", r.stderr)


if __name__ == "__main__":
    H.main(globals())

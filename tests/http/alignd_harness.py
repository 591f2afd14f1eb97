"""Starts the real alignd binary on a free loopback port for HTTP tests.

Standard library only, so the tests run on a bare Debian machine.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

BINARY = None  # set by main() from --binary


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """One alignd process; use as a context manager. Logs go to a file."""

    def __init__(self, *flags, env=None, cwd=None):
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="alignd_http_")
        self.log_path = os.path.join(self.tmp, "alignd.log")
        self.args = [BINARY, f"--server.port={self.port}", f"--log.file={self.log_path}",
                     f"--store.path={os.path.join(self.tmp, 'alignd.db')}",
                     # tests name their models: never the default pack
                     "--server.model_pack=none", "--log.level=debug", *flags]
        self.env = dict(os.environ, **(env or {}))
        self.cwd = cwd
        self.proc = None

    def __enter__(self):
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        self.stderr_file = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=self.stderr_file, cwd=self.cwd)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alignd exited with {self.proc.returncode}: "
                                   f"{self.stderr()} {self.log()}")
            try:  # ready: listening and every model loaded
                status, _, _ = self.request("GET", "/ready")
                if status in (200, 401):
                    return self
                time.sleep(0.05)
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("alignd did not become ready: " + self.log())

    def __exit__(self, *exc):
        crashed = self.proc.poll() not in (None, 0)
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.stderr_file.close()
        text = self.stderr()
        if crashed or "Sanitizer" in text or "runtime error" in text:
            # a crash or a sanitizer report is always shown, whatever the test said
            sys.stderr.write(f"\n--- alignd stderr ({self.args}) ---\n{text[-20000:]}\n")
            if "Sanitizer" in text or "runtime error" in text:
                raise AssertionError("alignd reported a sanitizer error (see above)")

    def stderr(self):
        try:
            with open(self.stderr_path) as f:
                return f.read()
        except OSError:
            return ""

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def access_lines(self):
        out = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def connect(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=10):
        """Returns (status, headers dict lower-cased, body bytes)."""
        conn = self.connect(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def json(self, method, path, obj=None, headers=None, timeout=10):
        h = {"Content-Type": "application/json", **(headers or {})}
        body = None if obj is None else json.dumps(obj).encode()
        status, hdrs, data = self.request(method, path, body, h, timeout)
        return status, hdrs, (json.loads(data) if data else None)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def main(module_globals):
    import argparse
    import unittest
    global BINARY
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    args, _ = ap.parse_known_args()
    BINARY = os.path.abspath(args.binary)
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for obj in module_globals.values():
        if isinstance(obj, type) and issubclass(obj, unittest.TestCase):
            suite.addTests(loader.loadTestsFromTestCase(obj))
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)

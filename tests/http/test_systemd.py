#!/usr/bin/env python3
"""systemd notifications (server/sdnotify.c) against the real daemon.

The test plays systemd: NOTIFY_SOCKET names a Python AF_UNIX datagram socket
and WATCHDOG_USEC asks for watchdog pings (WATCHDOG_PID stays unset: the
child's pid is unknown before it starts, and libsystemd accepts the variable
without it; a WATCHDOG_PID of another process turns the pings off). Checks:
READY=1 only once /ready answers 200 (after the models loaded), STATUS=
lines, WATCHDOG=1 every WATCHDOG_USEC/2, SIGHUP -> RELOADING=1 then READY=1,
SIGTERM -> STOPPING=1 and exit status 0.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared")
MODEL = os.path.join(SHARED, "models", "stories260K.gguf")
WATCHDOG_USEC = 400000


class Notified:
    """One daemon started under a fake systemd notify socket."""

    def __init__(self, *flags, watchdog_pid=None):
        self.tmp = tempfile.mkdtemp(prefix="alignd_sd_")
        self.sock_path = os.path.join(self.tmp, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        self.sock.settimeout(0.1)
        self.port = H.free_port()
        self.log_path = os.path.join(self.tmp, "alignd.log")
        env = dict(os.environ, NOTIFY_SOCKET=self.sock_path, WATCHDOG_USEC=str(WATCHDOG_USEC))
        env.pop("WATCHDOG_PID", None)
        if watchdog_pid is not None:
            env["WATCHDOG_PID"] = str(watchdog_pid)
        self.args = [H.BINARY, f"--server.port={self.port}", f"--log.file={self.log_path}",
                     f"--store.path={os.path.join(self.tmp, 'alignd.db')}",
                     f"--training.dir={os.path.join(self.tmp, 'training')}",
                     "--log.level=debug", *flags]
        self.env = env
        self.msgs = []        # (time received, {key: value}, /ready status at READY=1 or None)
        self.polls = []       # (time the request started, status) of /ready
        self.lock = threading.Lock()
        self.done = threading.Event()

    def ready_status(self):
        try:
            d = H.Daemon.__new__(H.Daemon)
            d.port = self.port
            return d.request("GET", "/ready", timeout=5)[0]
        except OSError:
            return None

    def _reader(self):
        while not self.done.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            t = time.monotonic()
            kv = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            st = self.ready_status() if kv.get("READY") == "1" else None
            with self.lock:
                self.msgs.append((t, kv, st))

    def _poller(self):  # /ready from the start until it turns 200
        while not self.done.is_set():
            t = time.monotonic()
            st = self.ready_status()
            with self.lock:
                self.polls.append((t, st))
            if st == 200:
                return
            time.sleep(0.002)

    def __enter__(self):
        self.stderr_file = open(os.path.join(self.tmp, "stderr.log"), "w")
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=self.stderr_file)
        self.threads = [threading.Thread(target=self._reader, daemon=True),
                        threading.Thread(target=self._poller, daemon=True)]
        for th in self.threads:
            th.start()
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.done.set()
        for th in self.threads:
            th.join(5)
        self.sock.close()
        self.stderr_file.close()

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def messages(self):
        with self.lock:
            return list(self.msgs)

    def wait_for(self, key, value="1", after=0, timeout=20):
        """Index of the first message after index `after` with key=value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, (_, kv, _) in enumerate(self.messages()):
                if i >= after and kv.get(key) == value:
                    return i
            if self.proc.poll() is not None and key != "STOPPING":
                break
            time.sleep(0.02)
        raise AssertionError(f"no {key}={value} from alignd; got {self.messages()}\n{self.log()}")


class SystemdNotifyTest(unittest.TestCase):
    def check_ready_order(self, d, i_ready):
        t_ready, kv, st = d.messages()[i_ready]
        self.assertEqual(st, 200, "/ready was not 200 when READY=1 arrived")
        self.assertIn("STATUS", kv)
        # no /ready request started after READY=1 arrived may have seen 503
        with d.lock:
            late = [(t, s) for t, s in d.polls if t > t_ready and s != 200]
        self.assertEqual(late, [])
        # READY=1 came once, and no earlier message claimed readiness
        readies = [m for m in d.messages()[:i_ready] if m[1].get("READY") == "1"]
        self.assertEqual(readies, [])

    def check_lifecycle(self, d, i_ready):
        # watchdog: pings every WATCHDOG_USEC/2 = 200 ms while the loop runs
        time.sleep(1.3)
        wd = [t for t, kv, _ in d.messages() if kv.get("WATCHDOG") == "1"]
        self.assertGreaterEqual(len(wd), 4, d.messages())
        gaps = [b - a for a, b in zip(wd, wd[1:])]
        self.assertLess(max(gaps), WATCHDOG_USEC / 1e6, gaps)  # well inside the period
        self.assertIn("pinging every 200 ms", d.log())

        # SIGHUP: RELOADING=1, then READY=1 again
        n = len(d.messages())
        d.proc.send_signal(signal.SIGHUP)
        i_rel = d.wait_for("RELOADING", after=n)
        self.assertIn("MONOTONIC_USEC", d.messages()[i_rel][1])
        i_again = d.wait_for("READY", after=i_rel + 1)
        self.assertEqual(d.messages()[i_again][2], 200)
        self.assertIn("SIGHUP: log file reopened", d.log())

        # SIGTERM: STOPPING=1 and a clean exit
        n = len(d.messages())
        d.proc.send_signal(signal.SIGTERM)
        self.assertEqual(d.proc.wait(20), 0, d.log())
        i_stop = d.wait_for("STOPPING", after=n, timeout=5)
        self.assertIn("STATUS", d.messages()[i_stop][1])
        later = [kv for _, kv, _ in d.messages()[i_stop + 1:] if "READY" in kv or "RELOADING" in kv]
        self.assertEqual(later, [])

    def test_no_model(self):
        with Notified() as d:
            i = d.wait_for("READY")
            self.check_ready_order(d, i)
            self.assertIn("no models", d.messages()[i][1]["STATUS"])
            self.check_lifecycle(d, i)

    def test_ready_after_models_loaded(self):
        if not os.path.exists(MODEL):
            print("\n*** SKIPPED: ../shared/models/stories260K.gguf is absent ***", file=sys.stderr)
            self.skipTest("stories260K.gguf absent")
        with Notified("--model", f"stories={MODEL}") as d:
            i = d.wait_for("READY")
            self.check_ready_order(d, i)
            loading = [kv for _, kv, _ in d.messages()[:i] if "loading 1 model" in kv.get("STATUS", "")]
            self.assertTrue(loading, d.messages())
            self.assertIn("serving 1 model", d.messages()[i][1]["STATUS"])
            self.assertIn("ready: 1 model(s) loaded", d.log())
            self.check_lifecycle(d, i)

    def test_watchdog_pid_of_another_process(self):
        # libsystemd: WATCHDOG_PID set and not ours -> the watchdog is not for us
        with Notified(watchdog_pid=1) as d:
            d.wait_for("READY")
            time.sleep(0.6)
            wd = [kv for _, kv, _ in d.messages() if "WATCHDOG" in kv]
            self.assertEqual(wd, [])
            d.proc.send_signal(signal.SIGTERM)
            self.assertEqual(d.proc.wait(20), 0)

    def test_without_notify_socket(self):
        # no NOTIFY_SOCKET: every notification is a no-op and the daemon runs as before
        with H.Daemon(env={"NOTIFY_SOCKET": "", "WATCHDOG_USEC": str(WATCHDOG_USEC)}) as d:
            self.assertEqual(d.request("GET", "/ready")[0], 200)
            self.assertEqual(d.stop(), 0)
            self.assertNotIn("watchdog", d.log())


if __name__ == "__main__":
    H.main(globals())

"""The training dashboard: the "Training" tab of the web page (GET /,
server/webui/index.html).

test_page: the page alignd serves has the dashboard's elements, both
languages' strings and the training/adapter endpoints, and stays
self-contained.

test_dashboard_in_browser: the page is taken from a running alignd (GET /)
and served, with canned JSON for /v1/training/runs, /v1/adapters,
/v1/feedback/stats and /v1/models, by a small stub HTTP server on loopback
written here (so the test does not depend on the training API itself);
tests/browser/dashboard.mjs drives it in headless Chromium (charts, buttons,
auto-refresh, keyboard, Chinese, a server without training); this test then
checks the requests the stub recorded.

The browser test skips loudly when Chromium or node/npm are absent.
"""
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402
import test_browser_form as BF  # noqa: E402  (tools_dir: playwright-core in the build tree)

IDS = ["tab-training", "panel-training", "train-status", "train-start", "train-refresh", "train-auto",
       "runs", "runs-unavailable", "runs-empty", "adapters", "adapters-body", "adapter-base",
       "adapters-unavailable", "serving", "fb-total", "fb-unavailable"]
STRINGS = ["Training", "Start run", "Training is not available on this server.", "Back to base model",
           "Roll back", "Activate", "训练", "开始训练", "此服务器不提供训练功能。", "回到基础模型", "回滚"]
PATHS = ["/v1/training/runs", "/v1/adapters", "/v1/adapters/base/activate", "/v1/feedback/stats"]


def skip(why):
    print(f"\n*** SKIPPED: {why} ***", file=sys.stderr)
    raise unittest.SkipTest(why)


def error(status, message, kind):
    return status, {"error": {"message": message, "type": kind, "code": None}}


class Stub:
    """Canned training API, shaped like api/training.c and api/adapters.c:
    the list leaves each run's history out (except run_2's, as the API
    description allows) and GET /v1/training/runs/{id} has it, with a "phase"
    per entry; final metrics nest objects ("eval", "reward_model"); the gate's
    reason is the adapter's. full=False: training and adapter routes are 404
    (no route) and the feedback counts fail with 500."""

    def __init__(self, html, full=True):
        self.html = html
        self.full = full
        self.log = []
        self.lock = threading.Lock()
        now = int(time.time())
        self.now = now
        dpo_hist = [{"step": s, "loss": 0.693 - 0.05 * s, "rewards/accuracies": min(1.0, 0.5 + 0.05 * s),
                     "rewards/margins": 0.1 * s, "lr": 5e-4} for s in range(1, 11)]  # no phase: one group
        reward_hist = [{"phase": "reward", "step": 2 * s, "loss": 0.7 / s, "accuracy": 0.5 + 0.05 * s, "lr": None}
                       for s in range(1, 9)]
        both_hist = ([{"phase": "dpo", "step": s, "loss": 0.69 - 0.01 * s, "rewards/accuracies": 0.5,
                       "rewards/margins": 0.01 * s, "lr": 1e-3} for s in range(1, 5)] +
                     [{"phase": "reward", "step": s, "loss": 0.7 - 0.1 * s, "accuracy": 0.6, "lr": 1e-3}
                      for s in range(1, 4)] + [{"step": "x"}, "junk", {"phase": "dpo", "step": 9, "loss": None}])
        self.runs = [
            {"id": "run_2", "object": "training.run", "model": "stories", "kind": "dpo", "trigger": "pairs",
             "status": "succeeded", "created_at": now - 3600, "started_at": now - 3590, "finished_at": now - 3475,
             "pairs": 128, "config": {"epochs": 2},
             "metrics": {"eval": {"pairs": 16, "loss": 0.41, "rewards/accuracies": 0.875, "rewards/margins": 1.234},
                         "kl": 0.0213, "promoted": True},
             "history": dpo_hist, "adapter_id": "ad_2", "error": None},
            {"id": "run_1", "status": "failed", "kind": None, "created_at": None, "metrics": None,
             "history": None, "pairs": None, "error": "out of memory while loading pairs"},
            {"id": "run_4", "model": "stories", "kind": "both", "trigger": "api", "status": "running",
             "created_at": now - 60, "started_at": now - 50, "finished_at": None, "pairs": 200, "metrics": None,
             "history": both_hist, "adapter_id": None, "error": None},
            None,
            {"id": "run_3", "model": "stories", "kind": "reward", "trigger": "schedule",
             "status": "succeeded", "created_at": now - 1800, "started_at": now - 1790,
             "finished_at": now - 1700, "pairs": 96,
             "metrics": {"reward_model": {"path": "/var/lib/alignd/rm-run_3", "eval_accuracy": 0.91,
                                          "eval_loss": 0.3, "steps": 16}, "promoted": False},
             "history": reward_hist, "adapter_id": "ad_3", "error": None},
            {"id": "run_0"},
        ]
        self.adapters = [
            {"id": "ad_1", "model": "stories", "version": 1, "parent_id": None, "run_id": "run_0", "status": "retired",
             "metrics": {"eval/rewards/accuracies": 0.7}, "path": "/x/ad_1", "sha256": "ab" * 32,
             "created_at": now - 7200, "reason": "replaced by ad_2"},
            {"id": "ad_2", "model": "stories", "version": 2, "parent_id": "ad_1", "run_id": "run_2", "status": "active",
             "metrics": {"kl_method": "exact", "kl": 0.0213, "eval": {"pairs": 16, "rewards/accuracies": 0.875}},
             "created_at": now - 3470,
             "reason": "accuracy 0.875 >= 0.6"},
            {"id": "ad_3", "model": "stories", "version": 3, "run_id": "run_3", "status": "candidate",
             "metrics": None, "created_at": now - 1700, "reason": "not better than the active adapter"},
        ]

    # -- routes --------------------------------------------------------------
    def answer(self, method, path, body):
        if path == "/v1/models" and method == "GET":
            return 200, {"object": "list", "data": [{"id": "stories", "object": "model"},
                                                    {"id": "stories:ad_2", "object": "model", "parent": "stories"}]}
        if path == "/v1/feedback/prompts" and method == "GET":
            return 200, {"object": "list", "data": ["Once upon a time"]}
        if path == "/v1/feedback/stats" and method == "GET":
            if not self.full:
                return error(500, "feedback stats: database is locked", "server_error")
            return 200, {"total": 42, "by_kind": {"pair": 30, "tie": 7, "both_bad": 5},
                         "by_annotator": {"ann": 40, "": 2}, "by_split": {"train": 38, "eval": 4},
                         "by_day": {"2026-01-01": 10, "2026-01-02": 0, "2026-01-03": 32}}
        if not self.full or not (path.startswith("/v1/training/") or path.startswith("/v1/adapters")):
            return error(404, f"no route for {method} {path}", "not_found")
        m = re.fullmatch(r"/v1/training/runs(?:/([^/]+))?", path)
        if m and m.group(1) is None:
            if method == "GET":
                return 200, {"object": "list", "data": [
                    {k: v for k, v in r.items() if k != "history"} if isinstance(r, dict) and r["id"] != "run_2"
                    else r for r in self.runs]}
            if method == "POST":
                if any(isinstance(r, dict) and r.get("status") in ("queued", "running") for r in self.runs):
                    return error(409, "a training run is already queued or running", "conflict")
                r = {"id": "run_5", "model": (body or {}).get("model"), "kind": (body or {}).get("kind"),
                     "trigger": "api", "status": "queued", "created_at": self.now + 5, "started_at": None,
                     "finished_at": None, "pairs": None, "metrics": None, "history": None, "adapter_id": None,
                     "error": None}
                self.runs.append(r)
                return 202, r
        if m:
            run = next((r for r in self.runs if isinstance(r, dict) and r.get("id") == m.group(1)), None)
            if run is None:
                return error(404, f"no training run {m.group(1)}", "not_found")
            if method == "GET":
                return 200, run
            if method == "DELETE":
                run.update(status="cancelled", finished_at=self.now, error="cancelled")
                return 200, run
        if path == "/v1/adapters" and method == "GET":
            return 200, {"object": "list", "data": self.adapters}
        m = re.fullmatch(r"/v1/adapters/([^/]+)/activate", path)
        if m and method == "POST":
            if m.group(1) == "ad_1":
                return error(409, "adapter ad_1: its file is missing", "conflict")
            target = next((a for a in self.adapters if a["id"] == m.group(1)), None)
            if m.group(1) != "base" and target is None:
                return error(404, f"no adapter {m.group(1)}", "not_found")
            for a in self.adapters:
                if a["status"] == "active":
                    a["status"] = "retired"
            if target:
                target["status"] = "active"
                return 200, target
            return 200, {"object": "adapter", "id": "base", "model": "stories", "status": "active"}
        return error(404 if method == "GET" else 405, f"no route for {method} {path}", "not_found")

    def finish(self):
        for r in self.runs:
            if isinstance(r, dict) and r.get("status") in ("queued", "running"):
                r.update(status="succeeded", started_at=self.now + 6, finished_at=self.now + 9, pairs=12,
                         metrics={"eval/rewards/accuracies": 0.5, "promoted": False, "reason": "too few pairs"},
                         history=[{"phase": "dpo", "step": 1, "loss": 0.69, "rewards/accuracies": 0.5,
                                   "rewards/margins": 0.0}])

    def serve(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, status, ctype, data):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                path = self.path.split("?")[0]
                if path == "/__stub/log":
                    with stub.lock:
                        return self.reply(200, "application/json", json.dumps(stub.log).encode())
                if path == "/__stub/finish":
                    with stub.lock:
                        stub.finish()
                    return self.reply(200, "application/json", b"{}")
                if path == "/" and self.command == "GET":
                    return self.reply(200, "text/html; charset=utf-8", stub.html)
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = "<malformed>"
                with stub.lock:
                    stub.log.append({"method": self.command, "path": path, "body": body,
                                     "content_type": self.headers.get("Content-Type"),
                                     "authorization": self.headers.get("Authorization")})
                    status, obj = stub.answer(self.command, path, body)
                    data = json.dumps(copy.deepcopy(obj)).encode()
                self.reply(status, "application/json", data)

            do_GET = do_POST = do_DELETE = do_PUT = handle_any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Dashboard(unittest.TestCase):
    def test_page(self):
        with H.Daemon() as d:
            s, h, body = d.request("GET", "/")
            self.assertEqual(s, 200)
            page = body.decode("utf-8")
            for i in IDS:
                self.assertIn(f'id="{i}"', page, i)
            for x in STRINGS:
                self.assertIn(x, page, x)
            for p in PATHS:
                self.assertIn(f'"{p}', page, p)
            self.assertIn('role="tabpanel"', page)
            self.assertNotIn("http://", page)
            self.assertNotIn("https://", page)
            self.assertIsNone(re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=", page))
            # the training routes may not exist yet: 404 there is what the page reports as "not available"
            s, _, b = d.json("GET", "/v1/training/runs")
            self.assertIn(s, (200, 404), b)

    def test_dashboard_in_browser(self):
        if not os.path.exists(BF.CHROMIUM):
            skip(f"{BF.CHROMIUM} is absent (deploy/install-deps.sh --test installs it)")
        if not shutil.which("node") or not shutil.which("npm"):
            skip("node/npm are absent (deploy/install-deps.sh --test installs them)")
        tools = BF.tools_dir()
        with H.Daemon() as d:
            s, h, html = d.request("GET", "/")
            self.assertEqual(s, 200)
            self.assertEqual(h["content-type"], "text/html; charset=utf-8")
        full, bare = Stub(html, full=True), Stub(html, full=False)
        full_url, bare_url = full.serve(), bare.serve()
        screenshot = os.path.join(os.path.dirname(H.BINARY), "dashboard.png")
        profile = tempfile.mkdtemp(prefix="alignd_chromium_")
        try:
            p = subprocess.run(["node", os.path.join(tools, "dashboard.mjs"), full_url, bare_url, screenshot, profile],
                               cwd=tools, capture_output=True, text=True, timeout=240)
            sys.stderr.write(p.stderr)
            self.assertEqual(p.returncode, 0, f"dashboard.mjs failed:\n{p.stdout}\n{p.stderr}")
            out = json.loads(p.stdout.strip().splitlines()[-1])
        finally:
            full.close()
            bare.close()
            shutil.rmtree(profile, ignore_errors=True)

        # what the page showed
        self.assertEqual(out["focusedTab"], "tab-training")
        self.assertEqual(out["order"], ["run_4", "run_3", "run_2", "run_1", "run_0"])
        self.assertEqual(out["statuses"], ["running", "succeeded", "succeeded", "failed", ""])
        charts = {k: {c["phase"] + ":" + c["metric"]: c["points"] for c in v} for k, v in out["charts"].items()}
        self.assertEqual(charts["run_2"], {":loss": 10, ":rewards/accuracies": 10, ":rewards/margins": 10})
        self.assertEqual(charts["run_3"], {"reward:loss": 8, "reward:accuracy": 8})
        self.assertEqual(charts["run_4"], {"dpo:loss": 4, "dpo:rewards/accuracies": 4, "dpo:rewards/margins": 4,
                                           "reward:loss": 3, "reward:accuracy": 3})
        self.assertEqual(charts["run_5"], {"dpo:loss": 1, "dpo:rewards/accuracies": 1, "dpo:rewards/margins": 1})
        self.assertTrue(all(c["visible"] for v in out["charts"].values() for c in v), out["charts"])
        self.assertIn("DPO · Loss", out["chartNames"])
        self.assertIn("reward model · Accuracy", out["chartNames"])
        for x in ("eval/rewards/accuracies", "0.875", "eval/rewards/margins", "1.234", "kl", "0.0213",
                  "Gate reason", "accuracy 0.875 >= 0.6", "Promoted", "yes"):
            self.assertIn(x, out["metricsText"])
        for x in ("reward_model/eval_accuracy", "0.91", "not better than the active adapter", "no"):
            self.assertIn(x, out["run3Metrics"])
        self.assertIn("out of memory while loading pairs", out["run1Text"])
        self.assertTrue(out["run1NoHistory"])
        self.assertEqual(out["adaptersBefore"], [
            {"id": "ad_3", "status": "candidate", "button": "Activate", "reason": "not better than the active adapter"},
            {"id": "ad_2", "status": "active", "button": None, "reason": "accuracy 0.875 >= 0.6"},
            {"id": "ad_1", "status": "retired", "button": "Roll back", "reason": "replaced by ad_2"}])
        self.assertEqual(out["servingBefore"], "ad_2 (v2)")
        # numbers only, the gate's first; everything in the tooltip
        self.assertEqual(out["ad2Metrics"]["text"], "eval/rewards/accuracies 0.875 · kl 0.0213 · eval/pairs 16")
        self.assertEqual(out["ad2Metrics"]["title"], "kl_method: exact\nkl: 0.0213\neval/pairs: 16\n"
                                                     "eval/rewards/accuracies: 0.875")
        self.assertEqual(out["fbTotal"], "42")
        for x in ("pair", "30", "train", "38", "eval", "ann"):
            self.assertIn(x, out["fbText"])
        self.assertEqual(out["fbBars"], 3)
        self.assertEqual(out["activate"], {"kind": "ok", "text": "Adapter ad_3 is now active."})
        self.assertEqual([a["status"] for a in out["adaptersAfter"]], ["active", "retired", "retired"])
        self.assertEqual(out["servingAfter"], "ad_3 (v3)")
        self.assertEqual(out["rollback"]["kind"], "error")
        self.assertIn("adapter ad_1: its file is missing", out["rollback"]["text"])
        self.assertIn("409", out["rollback"]["text"])
        self.assertTrue(out["rollbackInView"])
        self.assertEqual(out["base"], {"kind": "ok", "text": "Serving the base model now."})
        self.assertEqual(out["cancel"], {"kind": "ok", "text": "Cancelled run run_4."})
        self.assertTrue(out["cancelGone"])
        self.assertNotIn("Error", out["run4Cancelled"])  # "error": "cancelled" is not shown as a failure
        self.assertEqual(out["start"], {"kind": "ok", "text": "Started run run_5."})
        self.assertEqual(out["orderAfterStart"][0], "run_5")
        self.assertEqual(out["startAgain"]["kind"], "error")
        self.assertIn("already queued or running", out["startAgain"]["text"])
        self.assertGreaterEqual(out["pollsWhileActive"], 2)
        self.assertIn("3 s", out["autoText"])
        self.assertEqual(out["pollsWhenIdle"], 0)
        self.assertEqual(out["autoTextIdle"], "")
        self.assertEqual(out["zh"], {"tab": "训练", "heading": "训练任务", "badge": "成功", "start": "开始训练"})
        self.assertEqual(out["enBadge"], "succeeded")
        bare_out = out["bare"]
        self.assertEqual(bare_out["runs"], "Training is not available on this server.")
        self.assertEqual(bare_out["adapters"], "Adapters are not available on this server.")
        self.assertIn("database is locked", bare_out["status"])
        self.assertTrue(bare_out["startDisabled"])
        self.assertTrue(bare_out["baseDisabled"])
        self.assertEqual(bare_out["runCards"], 0)
        self.assertFalse(bare_out["formStatusShown"])  # one status line on the dashboard, not two
        for suffix in ("", "-zh", "-bare"):
            self.assertGreater(os.path.getsize(screenshot.replace(".png", suffix + ".png")), 0)

        # what the page sent
        log = full.log
        writes = [(r["method"], r["path"], r["body"]) for r in log if r["method"] != "GET"]
        self.assertEqual(writes, [
            ("POST", "/v1/adapters/ad_3/activate", {}),
            ("POST", "/v1/adapters/ad_1/activate", {}),
            ("POST", "/v1/adapters/base/activate", {"model": "stories"}),
            ("DELETE", "/v1/training/runs/run_4", None),
            ("POST", "/v1/training/runs", {"kind": "both", "model": "stories"}),
            ("POST", "/v1/training/runs", {"kind": "both", "model": "stories"}),
        ])
        for r in log:
            if r["method"] == "POST":
                self.assertEqual(r["content_type"], "application/json", r)
            if r["method"] != "GET":  # typed into the header before the first button
                self.assertEqual(r["authorization"], "Bearer secret-k", r)
        gets = [r["path"] for r in log if r["method"] == "GET"]
        # histories come from each run's own route: run_2's came with the list
        self.assertNotIn("/v1/training/runs/run_2", gets)
        self.assertIn("/v1/training/runs/run_3", gets)
        # the running run's history again while it runs, and once more after the cancel
        paths = [r["method"] + " " + r["path"] for r in log]
        self.assertGreaterEqual(gets.count("/v1/training/runs/run_4"), 2)
        self.assertIn("GET /v1/training/runs/run_4", paths[paths.index("DELETE /v1/training/runs/run_4"):])
        self.assertLessEqual({p for p in gets if not re.fullmatch(r"/v1/training/runs/run_\d", p)},
                             {"/v1/models", "/v1/feedback/prompts", "/v1/feedback/stats", "/v1/training/runs",
                              "/v1/adapters", "/favicon.ico"})
        bare_paths = {r["path"] for r in bare.log}
        self.assertIn("/v1/training/runs", bare_paths)
        self.assertIn("/v1/adapters", bare_paths)


if __name__ == "__main__":
    H.main(globals())

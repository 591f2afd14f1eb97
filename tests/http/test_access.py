#!/usr/bin/env python3
"""Access control against the real daemon: API keys with roles (infer,
feedback, admin; a bare key is admin), 401 versus 403, keys never logged,
CORS (off by default; server.cors_origins, preflight) and the web UI's
security headers (a CSP whose hashes match the page's inline blocks).

The completion check uses ../shared/models/stories260K.gguf when present;
without it the infer key is still shown to pass auth on /v1/completions.
"""
import base64
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "..", "..", "shared", "models", "stories260K.gguf")
DEBUG = "--server.debug_routes=true"
KEYS = {"infer": "ik-123", "feedback": "fk-456", "admin": "ak-legacy-789", "file_admin": "ak-file-000",
        "file_infer": "ik-file-111"}


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def item(i):
    return {"prompt": f"prompt {i}", "chosen": f"good {i}", "rejected": f"bad {i}"}


def model_flags():
    if os.path.exists(MODEL):
        return ["--model", f"stories={os.path.abspath(MODEL)}", "--model.stories.n_ctx=256"]
    print("\n*** note: stories260K.gguf is absent: completions only checked to pass auth ***",
          file=sys.stderr)
    return []


class Roles(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        fd, cls.key_file = tempfile.mkstemp(suffix=".keys")
        with os.fdopen(fd, "w") as f:
            f.write(f"# team keys\nadmin:{KEYS['file_admin']}\n  # indented comment\n"
                    f"infer: {KEYS['file_infer']}\n\n")
        cls.d = H.Daemon(DEBUG, "--training.enabled=false", *model_flags(),
                         f"--server.api_keys=infer:{KEYS['infer']}, feedback:{KEYS['feedback']},"
                         f"{KEYS['admin']}",
                         f"--server.api_key_file={cls.key_file}").__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        os.unlink(cls.key_file)

    def forbidden(self, method, path, key, role, body=None):
        s, h, b = self.d.json(method, path, body, auth(key))
        self.assertEqual(s, 403, f"{method} {path}: {b}")
        self.assertEqual(b["error"]["code"], "insufficient_role", b)
        self.assertEqual(b["error"]["type"], "permission_error", b)
        self.assertIn(f"'{role}'", b["error"]["message"])
        self.assertNotIn(key, b["error"]["message"])
        self.assertNotIn("www-authenticate", h)
        self.assertEqual(h.get("x-content-type-options"), "nosniff")

    def passes(self, method, path, key, body=None, want=None):
        s, _, b = self.d.json(method, path, body, auth(key), timeout=60)
        self.assertNotIn(s, (401, 403), f"{method} {path}: {b}")
        if want is not None:
            self.assertIn(s, want, f"{method} {path}: {b}")
        return s, b

    def test_infer_key(self):
        for key in (KEYS["infer"], KEYS["file_infer"]):
            self.passes("GET", "/v1/models", key, want=(200,))
            comp = {"model": "stories", "prompt": "Once upon a time", "max_tokens": 4, "seed": 1}
            if os.path.exists(MODEL):
                _, b = self.passes("POST", "/v1/completions", key, comp, want=(200,))
                self.assertEqual(b["object"], "text_completion")
                self.passes("POST", "/tokenize", key, {"content": "hello"}, want=(200,))
            else:
                self.passes("POST", "/v1/completions", key, comp)
            self.forbidden("POST", "/v1/feedback", key, "feedback", item(1))
            self.forbidden("GET", "/v1/feedback", key, "feedback")
            self.forbidden("GET", "/v1/feedback/stats", key, "feedback")
            self.forbidden("POST", "/v1/training/runs", key, "admin", {"kind": "dpo", "model": "stories"})
            self.forbidden("GET", "/v1/adapters", key, "admin")
            self.forbidden("POST", "/debug/echo", key, "admin", {"x": 1})

    def test_feedback_key(self):
        key = KEYS["feedback"]
        self.passes("GET", "/v1/models", key, want=(200,))
        s, b = self.passes("POST", "/v1/feedback", key, item(2), want=(200, 201))
        fid = b["id"]
        self.passes("GET", "/v1/feedback", key, want=(200,))
        self.passes("GET", f"/v1/feedback/{fid}", key, want=(200,))
        self.passes("GET", "/v1/feedback/stats", key, want=(200,))
        self.passes("GET", "/v1/feedback/prompts", key, want=(200,))
        self.forbidden("GET", "/v1/feedback/export", key, "admin")
        self.forbidden("DELETE", f"/v1/feedback/{fid}", key, "admin")
        self.forbidden("POST", "/v1/training/runs", key, "admin", {"kind": "dpo", "model": "stories"})
        self.forbidden("GET", "/v1/training/runs", key, "admin")
        self.forbidden("POST", "/v1/adapters/base/activate", key, "admin", {"model": "stories"})
        # 403 comes before body checks, like 401
        s, _, _ = self.d.request("POST", "/v1/training/runs", b"junk",
                                 {"Content-Type": "text/plain", **auth(key)})
        self.assertEqual(s, 403)

    def test_admin_keys(self):
        for key in (KEYS["admin"], KEYS["file_admin"]):
            self.passes("GET", "/v1/models", key, want=(200,))
            _, b = self.passes("POST", "/v1/feedback", key, item(3), want=(200, 201))
            self.passes("GET", "/v1/feedback/stats", key, want=(200,))
            self.passes("GET", "/v1/feedback/export", key, want=(200,))
            self.passes("DELETE", f"/v1/feedback/{b['id']}", key, want=(200, 204))
            self.passes("GET", "/v1/training/runs", key, want=(200,))
            self.passes("POST", "/v1/training/runs", key, {"kind": "dpo", "model": "stories"})
            self.passes("GET", "/v1/adapters", key, want=(200,))
            self.passes("POST", "/debug/echo", key, {"message": "hi"}, want=(200,))

    def test_wrong_or_missing_key(self):
        for headers in ({}, auth("wrong"), auth(KEYS["infer"][:-1]), auth("infer:" + KEYS["infer"]),
                        {"Authorization": "Basic " + KEYS["admin"]}):
            for method, path in (("GET", "/v1/models"), ("POST", "/v1/feedback"),
                                 ("GET", "/v1/training/runs")):
                s, h, b = self.d.json(method, path, item(4) if method == "POST" else None, headers)
                self.assertEqual(s, 401, (headers, path, b))
                self.assertEqual(b["error"]["code"], "invalid_api_key")
                self.assertEqual(h["www-authenticate"], "Bearer")

    def test_keys_never_logged(self):
        self.d.json("GET", "/v1/models", None, auth(KEYS["infer"]))
        self.d.json("GET", "/v1/training/runs", None, auth(KEYS["feedback"]))
        self.d.json("GET", "/v1/models", None, auth("wrong-key-xyz"))
        text = self.d.log() + self.d.stderr()
        self.assertTrue(any(l.get("status") == 403 for l in self.d.access_lines()))
        for key in list(KEYS.values()) + ["wrong-key-xyz"]:
            self.assertNotIn(key, text)

    def test_print_config_masks_keys(self):
        p = subprocess.run([H.BINARY, "--print-config", f"--server.api_keys=infer:{KEYS['infer']},{KEYS['admin']}"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"api_keys = \(secret")
        for key in (KEYS["infer"], KEYS["admin"]):
            self.assertNotIn(key, p.stdout + p.stderr)


class Config(unittest.TestCase):
    def test_unknown_role_is_an_error(self):
        p = subprocess.run([H.BINARY, "--server.port=1", "--server.api_keys=reader:sekrit-key"],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("unknown API key role 'reader'", p.stderr + p.stdout)
        self.assertNotIn("sekrit-key", p.stderr + p.stdout)

    def test_role_key_from_env(self):
        with H.Daemon(env={"ALIGND_SERVER_API_KEYS": "feedback:env-fk"}) as d:
            self.assertEqual(d.json("GET", "/v1/feedback", None, auth("env-fk"))[0], 200)
            self.assertEqual(d.json("GET", "/v1/feedback/export", None, auth("env-fk"))[0], 403)
            self.assertEqual(d.json("GET", "/v1/feedback", None, auth("env"))[0], 401)

    def test_no_keys_everything_open(self):
        with H.Daemon(DEBUG, "--training.enabled=false") as d:
            s, _, b = d.json("POST", "/v1/feedback", item(5))
            self.assertIn(s, (200, 201), b)
            for method, path in (("GET", "/v1/models"), ("GET", "/v1/feedback"),
                                 ("GET", "/v1/feedback/export"), ("GET", "/v1/training/runs"),
                                 ("GET", "/v1/adapters"), ("DELETE", f"/v1/feedback/{b['id']}")):
                s, _, _ = d.json(method, path, None, auth("anything"))
                self.assertIn(s, (200, 204), path)
            self.assertEqual(d.json("POST", "/debug/echo", {"message": "hi"})[0], 200)


class Cors(unittest.TestCase):
    ORIGIN = "https://app.example"

    def test_off_by_default(self):
        with H.Daemon() as d:
            s, h, _ = d.request("GET", "/v1/models", headers={"Origin": self.ORIGIN})
            self.assertEqual(s, 200)
            self.assertFalse([k for k in h if k.startswith("access-control-")], h)
            self.assertEqual(h["x-content-type-options"], "nosniff")
            s, h, _ = d.request("OPTIONS", "/v1/completions",
                                headers={"Origin": self.ORIGIN, "Access-Control-Request-Method": "POST"})
            self.assertEqual(s, 405)
            self.assertNotIn("access-control-allow-origin", h)

    def test_listed_origins(self):
        with H.Daemon(f"--server.cors_origins={self.ORIGIN}, http://localhost:3000",
                      "--server.api_keys=infer:ck") as d:
            s, h, _ = d.request("GET", "/v1/models", headers={"Origin": self.ORIGIN, **auth("ck")})
            self.assertEqual(s, 200)
            self.assertEqual(h["access-control-allow-origin"], self.ORIGIN)
            self.assertIn("Origin", h["vary"])
            self.assertIn("X-Request-Id", h["access-control-expose-headers"])
            # errors carry the headers too, so the page can read them
            s, h, _ = d.request("GET", "/v1/models", headers={"Origin": "http://localhost:3000"})
            self.assertEqual(s, 401)
            self.assertEqual(h["access-control-allow-origin"], "http://localhost:3000")
            s, h, _ = d.request("GET", "/v1/feedback", headers={"Origin": self.ORIGIN, **auth("ck")})
            self.assertEqual(s, 403)
            self.assertEqual(h["access-control-allow-origin"], self.ORIGIN)
            # an origin not listed gets no grant
            s, h, _ = d.request("GET", "/v1/models", headers={"Origin": "https://evil.example", **auth("ck")})
            self.assertEqual(s, 200)
            self.assertNotIn("access-control-allow-origin", h)
            self.assertIn("Origin", h["vary"])
            # preflight: no key needed, 204 with methods and headers
            s, h, body = d.request("OPTIONS", "/v1/chat/completions", headers={
                "Origin": self.ORIGIN, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type"})
            self.assertEqual(s, 204, body)
            self.assertEqual(body, b"")
            self.assertEqual(h["access-control-allow-origin"], self.ORIGIN)
            self.assertIn("POST", h["access-control-allow-methods"])
            allow_headers = h["access-control-allow-headers"].lower()
            self.assertIn("authorization", allow_headers)
            self.assertIn("content-type", allow_headers)
            self.assertIn("access-control-max-age", h)
            s, h, _ = d.request("OPTIONS", "/v1/feedback/12", headers={"Origin": self.ORIGIN})
            self.assertEqual(s, 204)
            self.assertIn("GET", h["access-control-allow-methods"])
            self.assertIn("DELETE", h["access-control-allow-methods"])
            s, h, _ = d.request("OPTIONS", "/v1/completions", headers={"Origin": "https://evil.example"})
            self.assertEqual(s, 204)
            self.assertNotIn("access-control-allow-origin", h)
            self.assertNotIn("access-control-allow-methods", h)
            s, _, _ = d.request("OPTIONS", "/no/such/route", headers={"Origin": self.ORIGIN})
            self.assertEqual(s, 404)

    def test_any_origin(self):
        with H.Daemon("--server.cors_origins=*") as d:
            s, h, _ = d.request("GET", "/v1/models", headers={"Origin": "https://x.example"})
            self.assertEqual(h["access-control-allow-origin"], "*")
            s, h, _ = d.request("OPTIONS", "/v1/completions", headers={"Origin": "https://x.example"})
            self.assertEqual(s, 204)
            self.assertEqual(h["access-control-allow-origin"], "*")


class WebUiHeaders(unittest.TestCase):
    def test_security_headers(self):
        with H.Daemon("--server.api_keys=k") as d:
            s, h, page = d.request("GET", "/")
            self.assertEqual(s, 200)
            self.assertEqual(h["x-content-type-options"], "nosniff")
            self.assertEqual(h["x-frame-options"], "DENY")
            self.assertEqual(h["referrer-policy"], "no-referrer")
            csp = h["content-security-policy"]
            d_ = {p.strip().split()[0]: p.strip().split()[1:] for p in csp.split(";") if p.strip()}
            self.assertEqual(d_["default-src"], ["'none'"])
            self.assertEqual(d_["frame-ancestors"], ["'none'"])
            self.assertEqual(d_["connect-src"], ["'self'"])
            self.assertNotIn("'unsafe-inline'", d_["script-src"])
            self.assertNotIn("'unsafe-inline'", d_["style-src"])
            text = page.decode()
            for tag, directive in (("script", "script-src"), ("style", "style-src")):
                blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.S)
                self.assertTrue(blocks, tag)
                want = sorted("'sha256-%s'" % base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()
                              for b in blocks)
                self.assertEqual(sorted(d_[directive]), want, directive)
            # the same policy on a second request (built once)
            self.assertEqual(d.request("GET", "/")[1]["content-security-policy"], csp)
            # JSON answers are nosniff too
            s, h, _ = d.request("GET", "/v1/models")
            self.assertEqual(s, 401)
            self.assertEqual(h["x-content-type-options"], "nosniff")


if __name__ == "__main__":
    H.main(globals())

"""GET /: the preference-feedback web form (api/webui.c, server/webui/index.html).

Checks the page is served as self-contained HTML with the element ids the
browser test relies on and both languages' strings, and that it stays open
when API keys are configured while /v1 still needs the key.
"""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402

IDS = ["prompt", "generate", "random-prompt", "model", "answer-a", "answer-b", "pick-a", "pick-b",
       "tie", "both-bad", "comment", "status", "count", "annotator", "api-key", "lang",
       "tab-compare", "tab-paste", "paste-prompt", "paste-chosen", "paste-rejected", "paste-submit"]
STRINGS = ["A is better", "B is better", "Tie", "Both bad", "Generate", "Paste a pair",
           "A 更好", "B 更好", "平局", "都不好", "生成", "粘贴一对"]


class WebUI(unittest.TestCase):
    def get_page(self, d, headers=None):
        s, h, body = d.request("GET", "/", headers=headers)
        self.assertEqual(s, 200, body[:300])
        self.assertEqual(h["content-type"], "text/html; charset=utf-8")
        self.assertEqual(int(h["content-length"]), len(body))
        return body.decode("utf-8")

    def test_page(self):
        with H.Daemon() as d:
            page = self.get_page(d)
            self.assertTrue(page.startswith("<!doctype html>"))
            self.assertTrue(page.rstrip().endswith("</html>"))
            for i in IDS:
                self.assertIn(f'id="{i}"', page, i)
            for s in STRINGS:
                self.assertIn(s, page, s)
            for path in ("/v1/completions", "/v1/models", "/v1/feedback", "/v1/feedback/stats"):
                self.assertIn(f'"{path}"', page, path)
            self.assertIn("localStorage", page)
            self.assertIn("Bearer", page)
            # self-contained: no external scripts, styles, fonts or links
            self.assertNotIn("http://", page)
            self.assertNotIn("https://", page)
            self.assertIsNone(re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=", page))
            self.assertNotIn("@import", page)
            # the page is a document, not an API: other methods are refused
            s, _, _ = d.request("POST", "/", b"{}", {"Content-Type": "application/json"})
            self.assertEqual(s, 405)

    def test_open_with_api_keys(self):
        with H.Daemon("--server.api_keys=k") as d:
            page = self.get_page(d)  # no key: the page still loads
            self.assertIn('id="generate"', page)
            self.get_page(d, {"Authorization": "Bearer wrong"})
            s, _, b = d.json("GET", "/v1/models")
            self.assertEqual(s, 401, b)
            self.assertIn("message", b["error"])
            s, _, b = d.json("GET", "/v1/feedback/stats")
            self.assertEqual(s, 401, b)
            s, _, b = d.json("GET", "/v1/feedback/stats", headers={"Authorization": "Bearer k"})
            self.assertEqual(s, 200, b)
            self.assertIn("total", b)


if __name__ == "__main__":
    H.main(globals())

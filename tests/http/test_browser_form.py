"""The web form in a real browser: tests/browser/form.mjs drives headless
Chromium (Debian's /usr/bin/chromium, through playwright-core from npm,
installed once into the build tree) against the daemon serving stories260K,
then this test checks through GET /v1/feedback that the pair was stored.

Skips loudly when Chromium or ../shared/models/stories260K.gguf is absent.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BROWSER_DIR = os.path.join(HERE, "..", "browser")
SHARED = os.path.join(HERE, "..", "..", "..", "shared")
MODEL = os.path.join(SHARED, "models", "stories260K.gguf")
CHROMIUM = "/usr/bin/chromium"
PROMPT = "Once upon a time, a little fox found a red ball"


def skip(why):
    print(f"\n*** SKIPPED: {why} ***", file=sys.stderr)
    raise unittest.SkipTest(why)


def tools_dir():
    """npm-browser-tools next to the binary's build tree; installs
    playwright-core there once (like tests/openapi/lint.sh does)."""
    build = os.path.dirname(H.BINARY)
    tools = os.path.join(build, "npm-browser-tools")
    # a marker written after npm finished: a half-done install (another test
    # installing at the same time, an interrupted run) is done again
    done = os.path.join(tools, ".installed")
    if not os.path.exists(done):
        os.makedirs(tools, exist_ok=True)
        shutil.copy(os.path.join(BROWSER_DIR, "package.json"), os.path.join(tools, "package.json"))
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=tools,
                       check=True, stdout=subprocess.DEVNULL, timeout=600)
        open(done, "w").close()
    # ES modules resolve imports from their own folder: run copies from there
    for name in ("launch.mjs", "form.mjs", "dashboard.mjs"):
        shutil.copy(os.path.join(BROWSER_DIR, name), os.path.join(tools, name))
    return tools


class BrowserForm(unittest.TestCase):
    def test_generate_and_pick_a(self):
        if not os.path.exists(CHROMIUM):
            skip(f"{CHROMIUM} is absent (deploy/install-deps.sh --test installs it)")
        if not os.path.exists(MODEL):
            skip("../shared/models/stories260K.gguf is absent")
        if not shutil.which("node") or not shutil.which("npm"):
            skip("node/npm are absent (deploy/install-deps.sh --test installs them)")
        tools = tools_dir()
        screenshot = os.path.join(os.path.dirname(H.BINARY), "webui.png")
        profile = tempfile.mkdtemp(prefix="alignd_chromium_")
        try:
            with H.Daemon("--model", f"stories={os.path.abspath(MODEL)}", "--model.stories.n_ctx=256") as d:
                p = subprocess.run(["node", os.path.join(tools, "form.mjs"), f"http://127.0.0.1:{d.port}",
                                    PROMPT, screenshot, profile],
                                   cwd=tools, capture_output=True, text=True, timeout=180)
                sys.stderr.write(p.stderr)
                self.assertEqual(p.returncode, 0, f"form.mjs failed:\n{p.stdout}\n{p.stderr}\n{d.log()[-3000:]}")
                out = json.loads(p.stdout.strip().splitlines()[-1])
                self.assertEqual(out["prompt"], PROMPT)
                self.assertEqual(out["count"], out["before"] + 1)
                self.assertTrue(os.path.getsize(screenshot) > 0)
                s, _, b = d.json("GET", "/v1/feedback")
                self.assertEqual(s, 200, b)
                rows = [r for r in b["data"] if r.get("source") == "form" and r.get("prompt") == PROMPT]
                self.assertEqual(len(rows), 1, b)
                row = rows[0]
                self.assertEqual(row["id"], out["id"])
                self.assertIn(out["id"], out["status"])
                self.assertEqual(row["kind"], "pair")
                self.assertEqual(row["chosen"], out["a"])
                self.assertEqual(row["rejected"], out["b"])
                self.assertEqual(row["model"], "stories")
                # what the form sent is what a client gets for the same request (seed 1)
                s, _, c = d.json("POST", "/v1/completions", {"model": "stories", "prompt": PROMPT,
                                                             "max_tokens": 48, "temperature": 0.9, "seed": 1})
                self.assertEqual(s, 200, c)
                self.assertEqual(c["choices"][0]["text"], out["a"])
        finally:
            shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    H.main(globals())

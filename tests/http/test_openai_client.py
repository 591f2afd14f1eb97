#!/usr/bin/env python3
"""OpenAI's official Node.js client (npm `openai`) against the daemon:
tests/openai/client.mjs completes, streams and chats with stories260K.
The client is installed into the build tree once (npm registry)."""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alignd_harness as H  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_DIR = os.path.join(HERE, "..", "openai")
MODEL = os.path.join(HERE, "..", "..", "..", "shared", "models", "stories260K.gguf")


class OpenAIClient(unittest.TestCase):
    def test_official_client(self):
        if not os.path.exists(MODEL):
            print("\n*** SKIPPED: ../shared/models/stories260K.gguf is absent ***", file=sys.stderr)
            self.skipTest("../shared absent")
        tools = os.path.join(os.path.dirname(H.BINARY), "npm-openai")
        os.makedirs(tools, exist_ok=True)
        for f in ("package.json", "client.mjs"):
            shutil.copy(os.path.join(CLIENT_DIR, f), tools)
        if not os.path.isdir(os.path.join(tools, "node_modules", "openai")):
            subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=tools, check=True, timeout=600)
        with H.Daemon("--model", f"stories={MODEL}", "--model.stories.n_ctx=256",
                      "--model.stories.chat_template=chatml", "--server.api_keys=test-key") as d:
            r = subprocess.run(["node", os.path.join(tools, "client.mjs"),
                                f"http://127.0.0.1:{d.port}/v1", "stories"],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("all checks passed", r.stdout)


if __name__ == "__main__":
    H.main(globals())

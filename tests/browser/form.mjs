// Drives the web form (GET /) in headless Chromium through playwright-core:
// type a prompt, Generate, wait for answers A and B, click "A is better",
// wait for the status to confirm, take a screenshot. Prints one JSON line
// {"prompt","a","b","id","status","count","before"} on stdout for the caller to check.
// Usage: node form.mjs BASE_URL PROMPT SCREENSHOT_PNG USER_DATA_DIR
// (run from a folder where playwright-core is installed; see
// tests/http/test_browser_form.py).
import { openPage } from "./launch.mjs";

const [base, prompt, screenshot, userDataDir] = process.argv.slice(2);
if (!base || !prompt || !screenshot || !userDataDir) {
  console.error("usage: node form.mjs BASE_URL PROMPT SCREENSHOT_PNG USER_DATA_DIR");
  process.exit(2);
}

const { context, page, state } = await openPage(userDataDir, [base],
                                                 { width: 1200, height: 800 });
try {
  await page.goto(base + "/", { waitUntil: "load" });
  // the model picker and the counter are filled from /v1/models and /v1/feedback/stats
  await page.waitForFunction(() => document.querySelector("#model").options.length > 0 &&
                                    document.querySelector("#model").value !== "", null, { timeout: 15000 });
  await page.waitForFunction(() => /^\d+$/.test(document.querySelector("#count").textContent), null, { timeout: 15000 });
  const before = Number(await page.textContent("#count"));
  await page.fill("#prompt", prompt);
  await page.click("#generate");
  await page.waitForFunction(() => !document.querySelector("#pick-a").disabled ||
                                    document.querySelector("#status").classList.contains("error"),
                             null, { timeout: 60000 });
  const status1 = await page.textContent("#status");
  if (await page.$eval("#status", (s) => s.classList.contains("error")))
    throw new Error("generation failed: " + status1);
  const a = await page.textContent("#answer-a");
  const b = await page.textContent("#answer-b");
  if (!a || !b) throw new Error("empty answer: A=" + JSON.stringify(a) + " B=" + JSON.stringify(b));
  await page.click("#pick-a");
  await page.waitForFunction(() => {
    const s = document.querySelector("#status");
    return s.classList.contains("error") || (s.classList.contains("ok") && !!s.dataset.saved);
  }, null, { timeout: 15000 });
  const status = await page.textContent("#status");
  const id = await page.$eval("#status", (s) => s.dataset.saved || "");
  if (await page.$eval("#status", (s) => s.classList.contains("error")))
    throw new Error("saving failed: " + status);
  await page.waitForFunction((n) => Number(document.querySelector("#count").textContent) === n + 1,
                             before, { timeout: 15000 });
  const count = Number(await page.textContent("#count"));
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ prompt, a, b, id, status, count, before }));
} catch (e) {
  console.error("form.mjs:", e && e.stack || e);
  try { await page.screenshot({ path: screenshot, fullPage: true }); } catch (_) { /* best effort */ }
  state.failed = true;
} finally {
  await context.close();
}
process.exit(state.failed ? 1 : 0);

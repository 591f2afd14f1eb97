// Drives the training dashboard (the "Training" tab of GET /) in headless
// Chromium through playwright-core, against two stub servers written by
// tests/http/test_dashboard.py: FULL answers canned runs, adapters and
// feedback counts (and records every request), BARE answers 404 on the
// training and adapter routes and 500 on /v1/feedback/stats.
// Checks the charts, the buttons, auto-refresh, the keyboard, both languages
// and the error messages; prints one JSON line of what it saw on stdout (the
// caller checks the requests the stub recorded).
// Usage: node dashboard.mjs FULL_URL BARE_URL SCREENSHOT_PNG USER_DATA_DIR
import { openPage } from "./launch.mjs";

const [full, bare, screenshot, userDataDir] = process.argv.slice(2);
if (!full || !bare || !screenshot || !userDataDir) {
  console.error("usage: node dashboard.mjs FULL_URL BARE_URL SCREENSHOT_PNG USER_DATA_DIR");
  process.exit(2);
}

const { context, page, state } = await openPage(userDataDir, [full, bare],
                                                 { width: 1200, height: 900 });
page.on("dialog", (d) => { console.error("unexpected dialog:", d.message()); d.dismiss(); });

function check(cond, what) { if (!cond) throw new Error("check failed: " + what); }
const stubLog = async () => (await (await fetch(full + "/__stub/log")).json());
const countRunLists = async () =>
  (await stubLog()).filter((r) => r.method === "GET" && r.path === "/v1/training/runs").length;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const T = { timeout: 10000 };
const run = (id) => `#runs .run[data-run-id="${id}"]`;
// waits for the dashboard's status line to settle on ok or error and returns it
async function statusAfter(action) {
  await page.$eval("#train-status", (s) => { s.className = ""; s.textContent = ""; });
  await action();
  await page.waitForFunction(() => /^(ok|error)$/.test(document.querySelector("#train-status").className), null, T);
  return page.$eval("#train-status", (s) => ({ kind: s.className, text: s.textContent }));
}

const out = {};
try {
  await page.goto(full + "/", { waitUntil: "load" });
  await page.waitForFunction(() => document.querySelector("#model").options.length === 2, null, T);

  // keyboard: arrow keys move along the tabs to the dashboard
  await page.focus("#tab-compare");
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("ArrowRight");
  out.focusedTab = await page.evaluate(() => document.activeElement.id);
  check(out.focusedTab === "tab-training", "ArrowRight twice focuses the training tab");
  check(await page.isVisible("#panel-training") && !(await page.isVisible("#panel-compare")), "training panel shown");
  check(await page.getAttribute("#tab-training", "aria-selected") === "true", "aria-selected");

  // runs, newest first; entries that are not objects are skipped
  await page.waitForFunction(() => document.querySelectorAll("#runs .run").length === 5, null, T);
  out.order = await page.$$eval("#runs .run", (els) => els.map((e) => e.dataset.runId));
  out.statuses = await page.$$eval("#runs .run", (els) => els.map((e) => e.dataset.status));

  // the running run starts open with its charts: SVG paths with one point per step
  const paths = async (id) => page.$$eval(`${run(id)} .chart`, (figs) => figs.map((f) => ({
    metric: f.dataset.metric, phase: f.dataset.phase, points: (f.querySelector("svg path.line").getAttribute("d").match(/[ML]/g) || []).length,
    visible: f.getBoundingClientRect().height > 20 })));
  await page.waitForSelector(`${run("run_4")} .chart svg`, T); // history from GET /v1/training/runs/run_4
  out.charts = { run_4: await paths("run_4") };
  out.chartNames = await page.$$eval(`${run("run_4")} .chart figcaption b`, (b) => b.map((x) => x.textContent));
  check(await page.isVisible(`${run("run_4")} .run-cancel`), "cancel button on the running run");
  check(!(await page.isVisible(`${run("run_2")} .run-body`)), "older runs start closed");

  // opening a run shows its final metrics and charts
  await page.click(`${run("run_2")} .run-toggle`);
  check(await page.getAttribute(`${run("run_2")} .run-toggle`, "aria-expanded") === "true", "aria-expanded");
  out.charts.run_2 = await paths("run_2");
  out.metricsText = await page.textContent(`${run("run_2")} .metrics`);
  // the list left run_3's history out: opening it fetches GET /v1/training/runs/run_3
  await page.click(`${run("run_3")} .run-toggle`);
  await page.waitForSelector(`${run("run_3")} .chart svg`, T);
  out.charts.run_3 = await paths("run_3");
  out.run3Metrics = await page.textContent(`${run("run_3")} .metrics`);
  out.run1Text = await page.textContent(run("run_1"));
  await page.click(`${run("run_1")} .run-toggle`);
  out.run1NoHistory = await page.isVisible(`${run("run_1")} .no-history`);

  // adapters and feedback counts
  await page.waitForFunction(() => document.querySelectorAll("#adapters-body tr").length === 3, null, T);
  const adapters = async () => page.$$eval("#adapters-body tr", (trs) => trs.map((tr) => ({
    id: tr.dataset.adapterId, status: tr.querySelector(".badge").dataset.value,
    button: tr.querySelector("button") ? tr.querySelector("button").textContent : null,
    reason: tr.querySelector(".reason").textContent })));
  out.adaptersBefore = await adapters();
  out.servingBefore = await page.textContent("#serving");
  out.ad2Metrics = await page.$eval('#adapters-body tr[data-adapter-id="ad_2"] .metrics',
                                    (td) => ({ text: td.textContent, title: td.title }));
  out.fbTotal = await page.textContent("#fb-total");
  out.fbText = await page.textContent("#fb-stats");
  out.fbBars = await page.$$eval("#fb-days svg rect.bar", (r) => r.length);

  // the API key typed in the header goes with every request
  await page.fill("#api-key", "secret-k");
  await page.press("#api-key", "Tab");

  // activate the candidate with the keyboard (Enter on the focused button)
  await page.focus('#adapters-body tr[data-adapter-id="ad_3"] button');
  out.activate = await statusAfter(() => page.keyboard.press("Enter"));
  await page.waitForFunction(() => document.querySelector('#adapters-body tr[data-adapter-id="ad_3"] .badge').dataset.value === "active", null, T);
  out.adaptersAfter = await adapters();
  out.servingAfter = await page.textContent("#serving");
  // a rollback the server refuses: its message is shown as an error
  out.rollback = await statusAfter(() => page.click('#adapters-body tr[data-adapter-id="ad_1"] button'));
  // the message stays in view next to the button that was pressed, far down the page
  out.rollbackInView = await page.$eval("#train-status", (s) => {
    const r = s.getBoundingClientRect();
    return scrollY > 0 && r.top >= 0 && r.bottom <= innerHeight;
  });
  out.base = await statusAfter(() => page.click("#adapter-base"));
  await page.waitForFunction(() => /base model/.test(document.querySelector("#serving").textContent), null, T);

  // cancel the running run, then start a new one from an adapter's entry in the picker
  out.cancel = await statusAfter(() => page.click(`${run("run_4")} .run-cancel`));
  await page.waitForFunction((sel) => document.querySelector(sel).dataset.status === "cancelled", run("run_4"), T);
  out.cancelGone = !(await page.isVisible(`${run("run_4")} .run-cancel`));
  out.run4Cancelled = await page.textContent(`${run("run_4")} .run-head`) +
    (await page.$$eval(`${run("run_4")} .run-err`, (e) => e.map((x) => x.textContent).join("")));
  await page.selectOption("#model", "stories:ad_2");
  out.start = await statusAfter(() => page.click("#train-start"));
  await page.waitForFunction(() => document.querySelectorAll("#runs .run").length === 6, null, T);
  out.orderAfterStart = await page.$$eval("#runs .run", (els) => els.map((e) => e.dataset.runId));
  out.startAgain = await statusAfter(() => page.click("#train-start")); // the stub refuses a second one

  // auto-refresh while run_5 is queued, none once it has finished
  let before = await countRunLists();
  await sleep(9000);
  out.pollsWhileActive = (await countRunLists()) - before;
  out.autoText = await page.textContent("#train-auto");
  await fetch(full + "/__stub/finish", { method: "POST" });
  await page.waitForFunction((sel) => document.querySelector(sel).dataset.status === "succeeded", run("run_5"), T);
  await page.waitForSelector(`${run("run_5")} .chart svg`, T); // its history, fetched once more
  out.charts.run_5 = await paths("run_5");
  await sleep(500);
  before = await countRunLists();
  await sleep(7000);
  out.pollsWhenIdle = (await countRunLists()) - before;
  out.autoTextIdle = await page.textContent("#train-auto");

  // Chinese
  await page.click("#lang");
  out.zh = { tab: await page.textContent("#tab-training"), heading: await page.textContent("#runs-heading"),
             badge: await page.textContent(`${run("run_5")} .badge`), start: await page.textContent("#train-start") };
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-zh.png"), fullPage: true });
  await page.click("#lang");
  out.enBadge = await page.textContent(`${run("run_5")} .badge`);
  await page.screenshot({ path: screenshot, fullPage: true });

  // a server without training: messages instead of failures, and a visible error
  await page.goto(bare + "/#training", { waitUntil: "load" });
  await page.waitForSelector("#runs-unavailable", { state: "visible", ...T });
  await page.waitForSelector("#adapters-unavailable", { state: "visible", ...T });
  await page.waitForFunction(() => document.querySelector("#train-status").className === "error", null, T);
  out.bare = { runs: await page.textContent("#runs-unavailable"), adapters: await page.textContent("#adapters-unavailable"),
               status: await page.textContent("#train-status"), startDisabled: await page.isDisabled("#train-start"),
               baseDisabled: await page.isDisabled("#adapter-base"), runCards: await page.$$eval("#runs .run", (e) => e.length),
               formStatusShown: await page.isVisible("#status") };
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-bare.png"), fullPage: true });
  console.log(JSON.stringify(out));
} catch (e) {
  console.error("dashboard.mjs:", e && e.stack || e);
  console.error("seen so far:", JSON.stringify(out));
  try { await page.screenshot({ path: screenshot, fullPage: true }); } catch (_) { /* best effort */ }
  state.failed = true;
} finally {
  await context.close();
}
process.exit(state.failed ? 1 : 0);

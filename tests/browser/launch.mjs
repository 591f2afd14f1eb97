// The browser set-up the web-UI scripts share: headless Chromium (Debian's)
// through playwright-core with a private profile, and a watch that marks
// the run failed on a page error, a Content-Security-Policy violation
// (api/webui.c sends one) or any request outside the allowed origins.
// Returns { context, page, state }; the caller exits 1 when state.failed.
import { chromium } from "playwright-core";

export async function openPage(userDataDir, allowedOrigins, viewport) {
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport,
  });
  const state = { failed: false };
  const page = context.pages()[0] || await context.newPage();
  page.on("pageerror", (e) => { console.error("page error:", e.message); state.failed = true; });
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    console.error("console:", m.text());
    if (/Content Security Policy/i.test(m.text())) state.failed = true;
  });
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (allowedOrigins.some((o) => url.startsWith(o))) return route.continue();
    console.error("blocked external request:", url);
    state.failed = true;
    return route.abort();
  });
  return { context, page, state };
}

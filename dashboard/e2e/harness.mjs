// What the dashboard's Chromium flows share: the browser, the page, the
// console and dialog watch, and the page-ready wait.
import { chromium } from "playwright-core";
import path from "node:path";

export function check(condition, what) {
  if (!condition) throw new Error(`FAILED: ${what}`);
  console.log(`ok: ${what}`);
}

// A headless Chromium on the dashboard at `url`; screenshots go to `shots`.
// Dialogs are answered by `answer(dialog)` when given, else dismissed and
// counted as problems.
export async function start(url, shots, answer = null) {
  const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
  // Playwright's waits evaluate strings, which the page's CSP forbids; with
  // the CSP bypassed, the XSS checks test the escaping alone.
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 }, bypassCSP: true });
  const problems = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("dialog", (d) => {
    if (answer) return answer(d);
    problems.push(`dialog: ${d.message()}`);
    d.dismiss();
  });
  return {
    browser,
    page,
    problems,
    // Waits until the app has rendered `hash` (it sets data-ready when done).
    async open(hash) {
      await page.goto(`${url}/${hash}`);
      await page.waitForFunction((h) => document.getElementById("app").dataset.ready === h.replace(/^#/, ""), hash);
    },
    async shot(name) {
      await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
    },
  };
}

// Runs `flows` and reports: "all flows passed", or the failure, the
// problems seen and a screenshot; closes the browser.
export async function run(session, flows) {
  try {
    await flows();
    console.log("all flows passed");
  } catch (e) {
    console.error(e.message);
    console.error(session.problems.join("\n"));
    await session.shot("failure").catch(() => {});
    process.exitCode = 1;
  } finally {
    await session.browser.close();
  }
}

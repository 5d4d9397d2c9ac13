// The dashboard with a token limited to some services, in real headless
// Chromium:
//   node scoped.mjs http://127.0.0.1:PORT SCREENSHOT_DIR TOKEN HIDDEN_REGRESSION_ID
// Without a token the page asks for one; the token is set with the key
// button; then only the token's services (shop, shop-api) are listed, a
// hidden service (billing) reads as one that does not exist, and its
// regression is not there. Exits non-zero on the first failure.
import { check, run, start } from "./harness.mjs";

const [url, shots, token, hiddenId] = process.argv.slice(2);
const session = await start(url, shots, (dialog) => dialog.accept(token));
const { page, problems, open, shot } = session;

const errorText = async () => (await page.locator(".message.error").textContent()).trim();

await run(session, async () => {
  await open("#/");
  check(/key button/.test(await errorText()), "without a token the page asks for one");

  await page.click("#token");
  await page.waitForSelector("tr[data-service]");
  const listed = await page.locator("tr[data-service]").evaluateAll((rows) => rows.map((r) => r.dataset.service).sort());
  check(JSON.stringify(listed) === JSON.stringify(["shop", "shop-api"]), `only the token's services are listed (${listed})`);
  check(await page.locator("td.bad").count() === 2, "each shows its open regressions");
  await shot("scoped-services");

  await open("#/service/shop");
  check(await page.locator("tr[data-regression]").count() > 0, "its own service's regressions are shown");

  await open("#/service/billing");
  const hidden = await errorText();
  await open("#/service/nothere");
  const absent = await errorText();
  check(/billing/.test(hidden) && hidden === absent.replaceAll("nothere", "billing"), `a hidden service reads as one that does not exist (${hidden.slice(0, 80)})`);
  await shot("scoped-hidden");

  await open(`#/regression/${hiddenId}`);
  check(/no regression with id/.test(await errorText()), "a hidden service's regression is not there");

  // The first visit's 401 and the unknown services' 404s are expected.
  const unexpected = problems.filter((p) => !/40[14] \((Unauthorized|Not Found)\)/.test(p));
  check(unexpected.length === 0, `no console errors (${unexpected.join("; ")})`);
});

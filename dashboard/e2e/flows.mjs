// The dashboard's flows in real headless Chromium:
//   node flows.mjs http://127.0.0.1:PORT SCREENSHOT_DIR
// services → service → regression → differential flame graph; zoom and
// search; the endpoint filter; HTML names render as text; unknown
// service; no console errors. Exits non-zero on the first failure.
import { check, run, start } from "./harness.mjs";

const [url, shots] = process.argv.slice(2);
const session = await start(url, shots);
const { page, problems, open, shot } = session;

await run(session, async () => {
  // 1. Services.
  await open("#/");
  const services = await page.locator("tr[data-service]").allTextContents();
  check(services.some((s) => s.startsWith("fleet")), "the services page lists the simulated service");
  check(await page.locator('tr[data-service="fleet"] td.bad').count() === 1, "fleet shows open regressions");
  await shot("services");

  // 2. Click → the service page: chart, deploys, regressions.
  await page.click('tr[data-service="fleet"] a');
  await page.waitForFunction(() => document.getElementById("app").dataset.ready === "/service/fleet");
  check(await page.locator("#endpoint-chart path.series").count() >= 2, "per-endpoint cost per request lines");
  check(await page.locator("#endpoint-chart line.marker.deploy").count() === 3, "a marker per deploy");
  const regressions = await page.locator("tr[data-regression]").count();
  check(regressions >= 1, `regressions listed (${regressions})`);
  // Each deploy's cores at peak: the busiest 5-minute window's CPU over
  // its length, as the plain cost series (another query) gives it.
  const coresCells = await page.locator("tr[data-deploy] td.cores").allTextContents();
  check(
    coresCells.length === 3 && coresCells.every((t) => /^\d+(\.\d\d)? at \d+ req\/s · \d+\.\d core-h\/day$/.test(t)),
    `each deploy's cores at peak (${coresCells.join(" | ")})`,
  );
  const peaks = await page.evaluate(async () => {
    const series = await (await fetch("/api/v1/series?service=fleet&window=5m")).json();
    const peak = {};
    for (const p of series.points) peak[p.deploy] = Math.max(peak[p.deploy] || 0, p.cost / 300 / 1e9);
    return Object.keys(peak).sort().map((d) => peak[d]);
  });
  const shown = coresCells.map((t) => parseFloat(t));
  check(
    peaks.length === 3 && shown.every((c, i) => Math.abs(c - peaks[i]) <= Math.max(0.005, peaks[i] * 0.003)),
    `cores at peak agree with the cost series (${shown} vs ${peaks.map((p) => p.toFixed(2))})`,
  );
  await shot("service");

  // 3. Filter by endpoint: one line, the URL says so.
  const endpoints = await page.locator("#endpoint-filter option").evaluateAll((os) => os.map((o) => o.value));
  const endpoint = endpoints.find((v) => v !== "*");
  await page.selectOption("#endpoint-filter", endpoint);
  await page.waitForFunction(
    (e) => document.getElementById("app").dataset.ready === `/service/fleet?endpoint=${encodeURIComponent(e).replace(/%20/g, "+")}`,
    endpoint,
  );
  check(await page.locator("#endpoint-chart path.series").count() === 1, `endpoint filter shows one line (${endpoint})`);
  check(decodeURIComponent(page.url()).includes(`endpoint=${endpoint}`.replace(/ /g, "+")), "the filter is in the URL");
  await shot("service-endpoint");

  // 3b. A regression whose deploy event listed commits: its suspects,
  // the one that changed the function first, with why.
  const withSuspects = await page.evaluate(async () => {
    const { regressions } = await (await fetch("/api/v1/regressions?service=fleet")).json();
    return regressions.filter((r) => r.suspects && r.suspects.length).map((r) => ({ id: r.id, function: r.function }));
  });
  check(withSuspects.length >= 1, `regressions carry suspect commits (${withSuspects.length})`);
  await open(`#/regression/${withSuspects[0].id}`);
  const suspects = await page.locator("ol.suspects li").allTextContents();
  check(
    suspects.length === 1 && suspects[0].includes(`${withSuspects[0].function}: validate twice — Bo Dev`) && suspects[0].includes(`changed ${withSuspects[0].function} (work.rs:36–37)`),
    `the suspect commit and why (${suspects.join(" | ")})`,
  );
  await shot("regression-suspects");

  // 4. Click → a regression: facts, series, differential flame graph.
  await open("#/service/fleet");
  const regressionLink = page.locator("tr[data-regression] a").first();
  const regressedFunction = await regressionLink.textContent();
  await regressionLink.click();
  await page.waitForFunction(() => (document.getElementById("app").dataset.ready || "").startsWith("/regression/"));
  check((await page.locator("h1").textContent()).includes(regressedFunction), `regression page of ${regressedFunction}`);
  check(await page.locator(".facts dd").count() >= 5, "before / after / change with intervals");
  check(await page.locator("#diff-flame canvas").count() === 1, "the differential flame graph is drawn");
  check(await page.locator(".diff-legend .chip").count() === 7, "the diff legend");
  const focus = await page.getAttribute("#flame-status", "data-focus");
  check(focus === regressedFunction, `the diff opens zoomed on the regressed function (${focus})`);
  // The regressed node is red: sample the canvas where the focus is drawn.
  const red = await page.evaluate(() => {
    const c = document.querySelector("#diff-flame canvas");
    const ctx = c.getContext("2d");
    const data = ctx.getImageData(0, 0, c.width, c.height).data;
    let reddish = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i] > 200 && data[i + 1] < 200 && data[i + 2] < 200) reddish++;
    return reddish;
  });
  check(red > 1000, `red (risen) frames in the diff (${red} pixels)`);
  check(await page.locator("table tbody tr").count() >= 1, "contributing stacks listed");
  const mde = await page.locator(".facts dd.mde").textContent();
  check(/rises of \+\d+\.\d% or more/.test(mde), `the regression says how small a rise its test could see (${mde})`);
  await shot("regression");
  check((await page.locator(".facts dd.measure").textContent()) === "cost per request", "an agent's regression is per request");
  const where = await page.locator(".facts dd.call-path").textContent();
  check(/^\d+% of the rise under [^,\[\]]+( ← [^,\[\]]+)*( \(via [^\[\]]+ \d+%\))?( \(.+ inclusive [+-]\d+\.\d%\))?$/.test(where) && !where.includes("[object"), `the call path reads as names (${where})`);
  const costs = await page.locator(".facts dd.capacity").textContent();
  check(/^\+\d+(\.\d+)? cores at peak \([\d,]+ requests\/s\), \d+(\.\d+)? core-hours a day$/.test(costs), `the regression is priced in cores (${costs})`);

  // 4b. The same fleet without request counts: found in shares, and said so.
  await open("#/service/uncounted");
  const measures = await page.locator("tr[data-regression] td.measure").allTextContents();
  check(measures.length >= 1 && measures.every((m) => m === "share of the endpoint's samples"), `regressions without request counts are in shares (${measures})`);
  await page.locator("tr[data-regression] a").first().click();
  await page.waitForFunction(() => (document.getElementById("app").dataset.ready || "").startsWith("/regression/"));
  const before = await page.locator(".facts dd").nth(1).textContent();
  check(/^\d+\.\d\d% \(/.test(before), `a share before, as a percentage (${before})`);
  await shot("regression-share");

  // 5. The flame graph page: zoom by click, search with matched share, reset.
  await open("#/flame?service=fleet");
  check(await page.locator("#flame canvas").count() === 1, "flame graph drawn");
  const box = await page.locator("#flame canvas").boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height - 9 - 18);
  await page.waitForSelector(".tooltip:not([hidden])");
  const tip = await page.locator(".tooltip").textContent();
  check(/%/.test(tip) && /per request/.test(tip), `tooltip with share and per-request cost (${tip.slice(0, 60)}…)`);
  await page.mouse.click(box.x + box.width / 2, box.y + box.height - 9 - 18);
  const zoomed = await page.getAttribute("#flame-status", "data-focus");
  check(zoomed !== "all", `click zooms (${zoomed})`);
  await page.fill("#flame-search", "validate");
  const matched = Number(await page.getAttribute("#flame-status", "data-matched"));
  check(matched > 0 && matched <= 1, `search highlights and reports the matched share (${matched})`);
  await shot("flame-search");
  await page.click("#flame-reset");
  check((await page.getAttribute("#flame-status", "data-focus")) === "all", "reset zoom");
  // Sort the top-functions table by inclusive cost.
  await page.click('#top-functions th[data-key="inclusive"]');
  const firstInclusive = await page.locator("#top-functions tbody tr td.fn").first().textContent();
  check(firstInclusive === "main" || firstInclusive.length > 0, `top functions sort by inclusive (${firstInclusive})`);
  // Filter by endpoint through the form; icicle.
  await page.selectOption("#flame-endpoint", endpoint);
  await page.check('input[name="icicle"]');
  await page.click('#flame-filters button[type="submit"]');
  await page.waitForFunction(() => (document.getElementById("app").dataset.ready || "").includes("icicle=1"));
  check(page.url().includes("endpoint="), "flame filters are in the URL");
  await shot("flame-icicle-endpoint");

  // 6. Compare any two deploys; a deploy with the one before it also says
  // what detection's comparison could see.
  await open("#/compare?service=fleet&base=d000&candidate=d002");
  check(await page.locator("#diff-flame canvas").count() === 1, "comparison of two deploys");
  check(await page.locator("table.sensitivity").count() === 0, "no sensitivity for a pair detection does not compare");
  await shot("compare");
  await open("#/compare?service=fleet&base=d001&candidate=d002");
  await shot("compare-sensitivity");
  const could = await page.locator("table.sensitivity td.mde").allTextContents();
  check(could.length >= 5 && could.every((t) => /^≥ \d+\.\d%$/.test(t) || t.startsWith("untested")), `what the comparison could see (${could.slice(0, 3)})`);

  // 7. HTML in names and labels renders as text.
  await open("#/flame?service=xss");
  const names = await page.locator("#top-functions td.fn").allTextContents();
  check(names.includes("<img src=x onerror=window.__xss=1>"), "an HTML function name is shown as text");
  check(names.includes("<script>window.__xss=2</script>"), "a script function name is shown as text");
  const endpointsXss = await page.locator("#flame-endpoint option").allTextContents();
  check(endpointsXss.includes("<img src=x onerror=window.__xss=1>"), "an HTML endpoint label is shown as text");
  await open("#/service/xss");
  check((await page.evaluate(() => window.__xss)) === undefined, "no injected script ran");
  check(await page.locator("main img, main script").count() === 0, "no element was injected");
  await shot("xss");

  // 8. An unknown service in the URL: a clear message, not a blank page.
  await open("#/service/nope");
  const error = await page.locator(".message.error").textContent();
  check(/nope/.test(error), `unknown service says so (${error.trim().slice(0, 80)})`);
  await open("#/flame?service=fleet&deploy=v404");
  check(/v404/.test(await page.locator(".message.error").textContent()), "unknown deploy says so");
  await shot("unknown");

  // 404s of the API for unknown names are expected; anything else is not.
  const unexpected = problems.filter((p) => !/404 \(Not Found\)/.test(p));
  check(unexpected.length === 0, `no console errors (${unexpected.join("; ")})`);
});

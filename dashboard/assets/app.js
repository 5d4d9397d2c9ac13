// The flameshift dashboard: pages over the analyzer's JSON API. The page
// state is in the URL fragment, so every view can be linked to:
//   #/                                    services
//   #/service/NAME[?endpoint=E]           a service
//   #/regression/ID                       a regression
//   #/flame?service=&deploy=&endpoint=&from=&until=&label=k=v&icicle=1&search=
//   #/compare?service=&base=&candidate=&endpoint=&focus=
// Every name and label reaches the DOM through textContent, never HTML.
"use strict";

import { FlameGraph, diffColour } from "./flame.js";
import { lineChart, legend } from "./chart.js";

const app = document.getElementById("app");

// ---- helpers ---------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function link(hash, ...children) {
  return el("a", { href: hash }, ...children);
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v == null || v === "") continue;
    for (const one of Array.isArray(v) ? v : [v]) q.append(k, one);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

class ApiError extends Error {}

async function api(path) {
  const headers = {};
  const token = localStorage.getItem("flameshift-token");
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { headers });
  } catch (e) {
    throw new ApiError(`the analyzer did not answer (${e.message})`);
  }
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (!response.ok) {
    const why = body && body.error ? body.error : text || response.statusText;
    if (response.status === 401) throw new ApiError(`${why} — set the token with the key button at the top right`);
    throw new ApiError(why);
  }
  return body;
}

export function formatValue(unit) {
  if (unit === "instructions") {
    return (v) => {
      const a = Math.abs(v);
      if (a >= 1e9) return `${(v / 1e9).toFixed(2)} G instr`;
      if (a >= 1e6) return `${(v / 1e6).toFixed(2)} M instr`;
      if (a >= 1e3) return `${(v / 1e3).toFixed(1)} K instr`;
      return `${Math.round(v)} instr`;
    };
  }
  return (v) => {
    const a = Math.abs(v);
    if (a >= 1e9) return `${(v / 1e9).toFixed(2)} s`;
    if (a >= 1e6) return `${(v / 1e6).toFixed(2)} ms`;
    if (a >= 1e3) return `${(v / 1e3).toFixed(1)} µs`;
    return `${Math.round(v)} ns`;
  };
}

const pct = (x) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%`;
const when = (ms) => (ms == null ? "—" : new Date(ms).toISOString().replace("T", " ").slice(0, 19));

function message(kind, ...children) {
  return el("div", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" }, ...children);
}

function emptyState() {
  return message(
    "empty",
    el("h2", {}, "No profiles yet"),
    el("p", {}, "Attach the agent to a service and point it at this analyzer:"),
    el(
      "pre",
      {},
      [
        "# Cargo.toml",
        'flameshift-collector = { version = "0.1", features = ["axum"] }',
        "",
        "// main.rs",
        "use flameshift_collector::agent::{Agent, AgentConfig};",
        "use flameshift_collector::layer::{AxumRoute, CpuLayer};",
        "",
        'let agent = Agent::start(AgentConfig::new("my-service", "v1")',
        `    .analyzer("${location.origin}"))?;`,
        "let app = Router::new()",
        '    .route("/", get(handler))',
        "    .layer(CpuLayer::new(agent.request_stats(), AxumRoute));",
      ].join("\n"),
    ),
    el("p", {}, "Or run ", el("code", {}, "cargo run --release -- demo"), " to see the whole product on simulated deploys."),
  );
}

function table(headers, rows, options = {}) {
  const head = el(
    "tr",
    {},
    headers.map((h, k) =>
      el(
        "th",
        options.sort ? { class: "sortable", onclick: () => options.sort(k), "data-key": h } : {},
        h,
        options.sorted === k ? " ▾" : "",
      ),
    ),
  );
  return el("table", { class: options.class || "" }, el("thead", {}, head), el("tbody", {}, rows));
}

function setTitle(...parts) {
  document.title = [...parts, "flameshift"].join(" · ");
}

// ---- pages -------------------------------------------------------------

async function servicesPage() {
  setTitle("Services");
  const [{ services }, { regressions }] = await Promise.all([
    api("/api/v1/services"),
    api("/api/v1/regressions?state=open"),
  ]);
  if (services.length === 0) return [el("h1", {}, "Services"), emptyState()];
  const rows = await Promise.all(
    services.map(async (s) => {
      const { deploys } = await api(`/api/v1/services/${encodeURIComponent(s.service)}/deploys`);
      const latest = deploys.find((d) => d.deploy === s.latest_deploy) || deploys[deploys.length - 1];
      const format = formatValue(s.units[0]);
      const perRequest = latest && latest.requests > 0 ? format(latest.weight / latest.requests) : "—";
      const open = regressions.filter((r) => r.service === s.service).length;
      return el(
        "tr",
        { "data-service": s.service },
        el("td", {}, link(`#/service/${encodeURIComponent(s.service)}`, s.service)),
        el("td", {}, s.latest_deploy || "—"),
        el("td", {}, String(s.deploys)),
        el("td", { class: open ? "bad" : "" }, open ? `${open} open` : "none"),
        el("td", {}, perRequest),
        el("td", {}, s.units.join(", ")),
        el("td", {}, when(s.last_seen_ms)),
      );
    }),
  );
  return [
    el("h1", {}, "Services"),
    table(["service", "latest deploy", "deploys", "regressions", "cost per request (latest)", "unit", "last seen"], rows),
  ];
}

// What a regression's or a test's costs are divided by: the best its
// data supports (per request where the agent counted requests; else the
// share of the endpoint's samples; else per second of wall time).
const MEASURE_NAMES = { per_request: "cost per request", share: "share of the endpoint's samples", per_second: "cost per second" };
function measureName(measure) {
  return MEASURE_NAMES[measure] || MEASURE_NAMES.per_request;
}
function measureFormat(measure, unit) {
  if (measure === "share") return (v) => `${(v * 100).toFixed(2)}%`;
  if (measure === "per_second") return unit === "instructions" ? (v) => `${formatValue(unit)(v)}/s` : (v) => `${(v / 1e9).toFixed(3)} cores`;
  return formatValue(unit);
}

// Why an empty regression list is "not yet": the endpoints of the newest
// deploy pair that cannot be compared, and why.
function notCompared(comparison) {
  if (!comparison || !comparison.not_compared.length) return [];
  return el(
    "ul",
    { class: "not-compared" },
    comparison.not_compared.map((n) =>
      el("li", {}, el("code", {}, n.endpoint || "(whole service)"), ` not compared yet (${measureName(n.measure)}): ${n.reason}.`),
    ),
  );
}

function regressionRows(regressions, format) {
  return regressions.map((r) =>
    el(
      "tr",
      { "data-regression": r.id, class: r.state },
      el("td", {}, link(`#/regression/${encodeURIComponent(r.id)}`, r.function || "(endpoint total)")),
      el("td", {}, r.endpoint || "(outside requests)"),
      el("td", {}, r.metric),
      el("td", { class: "measure" }, measureName(r.measure)),
      el("td", {}, `${r.deploy_before} → ${r.deploy_after}`),
      el("td", { class: "bad" }, r.relative ? pct(r.relative.mean) : `+${measureFormat(r.measure, r.unit)(r.change.mean)}`),
      el("td", {}, r.relative ? `${pct(r.relative.low)} … ${pct(r.relative.high)}` : "new"),
      el("td", {}, r.q_value.toExponential(1)),
      el("td", {}, r.state),
    ),
  );
}

const REGRESSION_HEADERS = ["function", "endpoint", "metric", "measure", "deploys", "change", "95% interval", "q", "state"];

async function servicePage(service, params) {
  setTitle(service);
  const s = encodeURIComponent(service);
  const { deploys } = await api(`/api/v1/services/${s}/deploys`);
  const windowLength = params.get("window") || "5m";
  const [{ regressions, comparison }, series] = await Promise.all([
    api(`/api/v1/regressions?service=${s}`),
    api(`/api/v1/endpoints${query({ service, window: windowLength })}`),
  ]);
  const format = formatValue(series.unit);
  const endpoint = params.get("endpoint");
  let lines = series.endpoints.filter((e) => e.requests > 0);
  if (endpoint != null) lines = lines.filter((e) => e.endpoint === endpoint);
  const chartLines = lines.map((e) => ({
    name: e.endpoint,
    points: e.points.map((p) => ({ t: p.window_ms, v: p.cost_per_request })),
  }));
  const markers = deploys.map((d) => ({ t: d.first_seen_ms, label: d.deploy, kind: "deploy" }));
  for (const r of regressions) {
    if (r.at_ms != null && (endpoint == null || r.endpoint === endpoint)) {
      markers.push({ t: r.at_ms, label: `change point: ${r.function || r.endpoint}`, kind: "change" });
    }
  }
  const select = el(
    "select",
    {
      id: "endpoint-filter",
      "aria-label": "endpoint",
      onchange: (e) => {
        location.hash = `#/service/${s}${query({ endpoint: e.target.value === "*" ? null : e.target.value })}`;
      },
    },
    el("option", { value: "*" }, "every endpoint"),
    series.endpoints
      .filter((e) => e.requests > 0)
      .map((e) => el("option", { value: e.endpoint, selected: e.endpoint === endpoint }, e.endpoint)),
  );
  // Cores: the selected endpoint's, else the whole service's (CPU time only).
  const capacityOf = new Map(((endpoint != null ? (series.endpoints.find((e) => e.endpoint === endpoint) || {}).capacity : series.capacity) || []).map((c) => [c.deploy, c]));
  const cores = (d) => {
    const c = capacityOf.get(d.deploy);
    if (!c) return "—";
    // Without request counts there is no rate to show.
    const rate = c.peak_rps > 0 ? ` at ${c.peak_rps.toFixed(0)} req/s` : "";
    return `${c.cores_at_peak.toFixed(c.cores_at_peak >= 10 ? 0 : 2)}${rate} · ${c.core_hours_per_day.toFixed(1)} core-h/day`;
  };
  const deployRows = deploys.map((d, k) =>
    el(
      "tr",
      { "data-deploy": d.deploy },
      el("td", {}, d.deploy),
      el("td", {}, when(d.first_seen_ms)),
      el("td", {}, when(d.last_seen_ms)),
      el("td", {}, String(d.requests)),
      el("td", {}, d.requests > 0 ? format(d.weight / d.requests) : "—"),
      el("td", { class: "cores" }, cores(d)),
      el("td", {}, [d.event && d.event.commit ? d.event.commit : "", d.commits ? ` (${d.commits} commit${d.commits === 1 ? "" : "s"})` : ""].join("")),
      el(
        "td",
        {},
        link(`#/flame${query({ service, deploy: d.deploy, endpoint })}`, "flame graph"),
        k > 0 ? " · " : "",
        k > 0
          ? link(`#/compare${query({ service, base: deploys[k - 1].deploy, candidate: d.deploy, endpoint })}`, `diff vs ${deploys[k - 1].deploy}`)
          : "",
      ),
    ),
  );
  const shown = regressions.filter((r) => endpoint == null || r.endpoint === endpoint);
  return [
    el("h1", {}, service),
    el("div", { class: "toolbar" }, el("label", {}, "Endpoint ", select), link(`#/flame${query({ service, endpoint })}`, "flame graph"), link(`#/compare${query({ service, endpoint, base: deploys.length > 1 ? deploys[deploys.length - 2].deploy : null, candidate: deploys.length ? deploys[deploys.length - 1].deploy : null })}`, "compare deploys")),
    el("h2", {}, `Cost per request (${series.unit === "instructions" ? "CPU instructions" : "CPU time"}), per endpoint`),
    chartLines.length ? el("div", { class: "chart-box", id: "endpoint-chart" }, lineChart(chartLines, markers, format), legend(chartLines)) : message("empty", "No requests counted in this selection."),
    el("h2", {}, "Regressions"),
    shown.length ? table(REGRESSION_HEADERS, regressionRows(shown, format), { class: "regressions" }) : message("empty", "No regression found. Detection runs every minute and after each deploy."),
    notCompared(comparison),
    el("h2", {}, "Deploys"),
    table(["deploy", "first seen", "last seen", "requests", "cost per request", `cores at peak (${windowLength} windows)`, "commit", ""], deployRows),
  ];
}

async function regressionPage(id) {
  const { regressions } = await api("/api/v1/regressions");
  const r = regressions.find((x) => x.id === id);
  if (!r) throw new ApiError(`no regression with id ${id}: it may have been found under another id after a restart; see the service page`);
  setTitle(r.function || r.endpoint, r.service);
  // Estimates are in the regression's measure; series and stacks in the unit.
  const estimate = measureFormat(r.measure, r.unit);
  const format = formatValue(r.unit);
  const perRequest = r.measure == null || r.measure === "per_request";
  const seriesQuery = {
    service: r.service,
    endpoint: r.endpoint,
    function: r.function,
    self: r.metric === "self" ? "true" : null,
    window: "5m",
  };
  const [series, stacks] = await Promise.all([
    api(`/api/v1/series${query(seriesQuery)}`),
    api(`/api/v1/diff${query({ service: r.service, base: r.deploy_before, candidate: r.deploy_after, endpoint: r.endpoint, format: "json" })}`),
  ]);
  // Without requests the series is the cost per window (a share needs the
  // endpoint's total, which the series does not carry).
  const line = { name: r.function || r.endpoint, points: series.points.map((p) => ({ t: p.window_ms, v: perRequest ? p.cost_per_request : p.cost })) };
  const markers = [];
  let last = null;
  for (const p of series.points) {
    if (p.deploy !== last) markers.push({ t: p.window_ms, label: p.deploy, kind: "deploy" });
    last = p.deploy;
  }
  // Stacks that contributed: those through the function, by their rise.
  const scale = stacks.base_total > 0 ? stacks.candidate_total / stacks.base_total : 1;
  const contributing = stacks.stacks
    .filter((row) => !r.function || row.stack.split(";").includes(r.function))
    .map((row) => ({ ...row, delta: row.candidate - row.base * scale }))
    .sort((a, b) => b.delta - a.delta)
    .slice(0, 10);
  const est = (e) => `${estimate(e.mean)} (${estimate(e.low)} … ${estimate(e.high)})`;
  const box = el("div", { class: "flame-box", id: "diff-flame" });
  const page = [
    el("p", {}, link(`#/service/${encodeURIComponent(r.service)}`, `← ${r.service}`)),
    el("h1", {}, el("span", { class: "bad" }, r.relative ? pct(r.relative.mean) : "new cost"), " ", r.function || "(endpoint total)"),
    el("p", { class: "lead" }, `${r.metric} ${measureName(r.measure)} of `, el("code", {}, r.endpoint || "(whole service)"), ` rose in deploy `, el("strong", {}, r.deploy_after), ` (compared with ${r.deploy_before}); found by ${r.source}, ${r.state}.`),
    el(
      "dl",
      { class: "facts" },
      el("dt", {}, "measure"), el("dd", { class: "measure" }, measureName(r.measure)),
      el("dt", {}, "before"), el("dd", {}, est(r.before)),
      el("dt", {}, "after"), el("dd", {}, est(r.after)),
      el("dt", {}, "change"), el("dd", {}, r.relative ? `${pct(r.relative.mean)} (95%: ${pct(r.relative.low)} … ${pct(r.relative.high)})` : est(r.change)),
      el("dt", {}, "p / q"), el("dd", {}, `${r.p_value.toExponential(2)} / ${r.q_value.toExponential(2)}`),
      el("dt", {}, "windows"), el("dd", {}, `${r.windows[0]} before, ${r.windows[1]} after (${r.samples[0]} / ${r.samples[1]} samples)`),
      r.cause ? [el("dt", {}, "cause"), el("dd", {}, r.cause)] : [],
      r.call_path ? [el("dt", {}, "where"), el("dd", { class: "call-path" }, callPath(r.call_path))] : [],
      r.capacity ? [el("dt", {}, "costs"), el("dd", { class: "capacity" }, capacity(r.capacity))] : [],
      r.mde != null ? [el("dt", {}, "could see"), el("dd", { class: "mde" }, `rises of ${pct(r.mde)} or more (80% power at q ≤ its threshold)`)] : [],
      r.explains.length ? [el("dt", {}, "explains"), el("dd", {}, r.explains.join(", "))] : [],
    ),
    // Spread: the page is one flat list of elements.
    ...(r.suspects && r.suspects.length
      ? [
          el("h2", {}, "Suspect commits"),
          el(
            "ol",
            { class: "suspects" },
            r.suspects.slice(0, 10).map((s) => el("li", { "data-sha": s.sha }, el("code", {}, s.short), ` ${s.title} — ${s.author}: `, el("span", { class: "why" }, suspectWhy(s)))),
          ),
        ]
      : []),
    el("h2", {}, "Series"),
    el("div", { class: "chart-box" }, lineChart([line], markers, format)),
    el("h2", {}, "Differential flame graph ", link(`#/compare${query({ service: r.service, base: r.deploy_before, candidate: r.deploy_after, endpoint: r.endpoint, focus: r.function })}`, "open")),
    box,
    el("h2", {}, "Stacks that contributed"),
    table(
      ["stack", `before (${r.deploy_before}, scaled)`, `after (${r.deploy_after})`, "rise"],
      contributing.map((row) =>
        el("tr", {}, el("td", { class: "stack" }, row.stack.split(";").join(" → ")), el("td", {}, format(row.base * scale)), el("td", {}, format(row.candidate)), el("td", { class: row.delta > 0 ? "bad" : "" }, format(row.delta))),
      ),
    ),
  ];
  after(() => diffFlame(box, { service: r.service, base: r.deploy_before, candidate: r.deploy_after, endpoint: r.endpoint }, r.function));
  return page;
}

// "changed `parse` (parse.c:12–14)": why a commit is a suspect, as the
// gate's report and the webhook say it.
function suspectWhy(s) {
  return s.reasons
    .map((r) =>
      r.tier === "in_function"
        ? `changed ${r.function} (${r.at})`
        : r.tier === "on_call_path"
          ? `changed ${r.changed}, which calls ${r.function} (${r.at})`
          : `changed ${r.function}'s file elsewhere (${r.at})`,
    )
    .join("; ");
}

// "+0.80 cores at peak (1,200 requests/s), 14 core-hours a day": what a
// rise costs at the load of the deploy after.
function capacity(c) {
  const cores = (x) => (Math.abs(x) >= 10 ? x.toFixed(0) : Math.abs(x) >= 0.1 ? x.toFixed(2) : x.toFixed(4));
  const hours = Math.abs(c.core_hours_per_day) >= 10 ? c.core_hours_per_day.toFixed(0) : c.core_hours_per_day.toFixed(2);
  const peak = c.peak_rps != null ? ` (${Math.round(c.peak_rps).toLocaleString("en-US")} requests/s)` : "";
  return `${c.cores_at_peak >= 0 ? "+" : ""}${cores(c.cores_at_peak)} cores at peak${peak}, ${hours} core-hours a day`;
}

// "97% of the rise under beta ← handle (beta inclusive +30.0%)": the
// callers above the function where a self-cost rise concentrates; "100%
// of the rise under index (via compare_keys 55%, compare_values 45%)"
// when it splits below the frame holding it.
function callPath(p) {
  // Generic arguments take a line each in Rust's async frames; the full
  // name is in the tooltip.
  const short = (name) => {
    let out = name;
    for (let prev = ""; prev !== out; ) [prev, out] = [out, out.replace(/(.)<[^<>]*>/g, "$1")];
    return out;
  };
  const chain = (callers) => callers.map((c, i) => [i ? " ← " : "", el("code", { title: c }, short(c))]);
  const before = p.caller_before, after = p.caller_after;
  const caller = before > 0 && after != null ? [" (", el("code", { title: p.callers[0] }, short(p.callers[0])), ` inclusive ${pct(after / before - 1)})`] : [];
  // A rise that splits below the frame holding it: its branches.
  const via = (p.via || []).length ? [" (via ", p.via.map((v, i) => [i ? ", " : "", chain(v.callers), ` ${Math.round(Math.min(v.share, 1) * 100)}%`]), ")"] : [];
  return [`${Math.round(Math.min(p.share, 1) * 100)}% of the rise under `, chain(p.callers), via, caller];
}

let pendingAfter = [];
function after(f) {
  pendingAfter.push(f);
}

let current = null;

async function diffFlame(box, sel, focus) {
  const diff = await api(`/api/v1/diff${query({ ...sel, format: "tree", max_nodes: 100000 })}`);
  const format = formatValue(diff.unit);
  const status = el("span", { class: "flame-status", id: "flame-status" });
  box.append(flameToolbar(status), diffLegend(diff), diff.pruned_nodes > 0 ? message("note", `${diff.pruned_nodes} nodes below ${format(diff.min_value)} in both deploys are hidden (a change that small is too); they stay in their parents' width.`) : "");
  const holder = el("div", { class: "flame-holder" });
  box.append(holder);
  current = new FlameGraph(holder, { diff, format, onChange: (g) => flameStatus(status, g) });
  if (focus) {
    const i = current.find(focus);
    if (i >= 0) current.zoom(i);
  }
  flameStatus(status, current);
}

function diffLegend(diff) {
  const stops = [-0.5, -0.25, -0.1, 0, 0.1, 0.25, 0.5];
  return el(
    "div",
    { class: "diff-legend" },
    el("span", {}, diff.per_request ? "change in cost per request:" : "change in share of the total:"),
    stops.map((s) => {
      const chip = el("span", { class: "chip" }, s === 0 ? "0" : pct(s));
      chip.style.background = diffColour(s);
      return chip;
    }),
    el("span", {}, `width: ${diff.base} (scaled) + ${diff.candidate}`),
  );
}

function flameToolbar(status) {
  const input = el("input", {
    type: "search",
    id: "flame-search",
    placeholder: "search functions",
    "aria-label": "search functions",
    oninput: (e) => current && current.search(e.target.value),
  });
  return el("div", { class: "toolbar" }, input, el("button", { id: "flame-reset", onclick: () => current && current.reset() }, "reset zoom"), status);
}

function flameStatus(status, g) {
  const focus = g.flat.nodes[g.focus].name;
  const parts = [g.focus === 0 ? "whole graph" : `zoomed on ${focus}`];
  if (g.query) parts.push(`"${g.query}" matches ${(g.matchedShare * 100).toFixed(2)}%`);
  parts.push(`${g.flat.nodes.length} nodes`);
  status.textContent = parts.join(" · ");
  status.dataset.focus = focus;
  status.dataset.matched = g.query ? g.matchedShare.toFixed(4) : "";
}

async function flamePage(params) {
  const service = params.get("service");
  if (!service) throw new ApiError("which service? open it from the services page");
  setTitle("flame graph", service);
  const sel = {
    service,
    deploy: params.getAll("deploy"),
    endpoint: params.get("endpoint"),
    from: params.get("from"),
    until: params.get("until"),
    label: params.getAll("label"),
  };
  const [{ deploys }, endpoints] = await Promise.all([
    api(`/api/v1/services/${encodeURIComponent(service)}/deploys`),
    api(`/api/v1/endpoints${query({ service, window: "1d" })}`),
  ]);
  const [tree, top] = await Promise.all([
    api(`/api/v1/flamegraph${query({ ...sel, format: "json", max_nodes: 100000 })}`),
    api(`/api/v1/functions${query({ ...sel, limit: 200 })}`),
  ]);
  const format = formatValue(tree.unit);
  const icicle = params.get("icicle") === "1";
  const go = (change) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(change)) {
      next.delete(k);
      for (const one of [v].flat()) if (one != null && one !== "") next.append(k, one);
    }
    location.hash = `#/flame?${next}`;
  };
  const toMs = (v) => (v ? String(Date.parse(`${v}Z`)) : null);
  const fromMs = (v) => (v ? new Date(Number(v)).toISOString().slice(0, 16) : "");
  const filters = el(
    "form",
    {
      class: "filters",
      id: "flame-filters",
      onsubmit: (e) => {
        e.preventDefault();
        const f = new FormData(e.target);
        go({
          deploy: f.get("deploy") === "*" ? null : f.get("deploy"),
          endpoint: f.get("endpoint") === "*" ? null : f.get("endpoint"),
          from: toMs(f.get("from")),
          until: toMs(f.get("until")),
          label: String(f.get("label") || "").split(/[\s,]+/).filter(Boolean),
          icicle: f.get("icicle") ? "1" : null,
        });
      },
    },
    el("label", {}, "deploy ", el("select", { name: "deploy" }, el("option", { value: "*" }, "all"), deploys.map((d) => el("option", { value: d.deploy, selected: sel.deploy.includes(d.deploy) }, d.deploy)))),
    el("label", {}, "endpoint ", el("select", { name: "endpoint", id: "flame-endpoint" }, el("option", { value: "*" }, "all"), endpoints.endpoints.map((e) => el("option", { value: e.endpoint, selected: e.endpoint === sel.endpoint }, e.endpoint || "(outside requests)")))),
    el("label", {}, "from ", el("input", { type: "datetime-local", name: "from", value: fromMs(sel.from) })),
    el("label", {}, "until ", el("input", { type: "datetime-local", name: "until", value: fromMs(sel.until) })),
    el("label", {}, "labels ", el("input", { name: "label", placeholder: "key=value", value: sel.label.join(" ") })),
    el("label", {}, el("input", { type: "checkbox", name: "icicle", checked: icicle }), " icicle"),
    el("button", { type: "submit" }, "apply"),
  );
  const box = el("div", { class: "flame-box", id: "flame" });
  const status = el("span", { class: "flame-status", id: "flame-status" });
  box.append(flameToolbar(status));
  if (tree.pruned_nodes > 0) box.append(message("note", `${tree.pruned_nodes} nodes below ${format(tree.min_value)} are hidden; their cost stays in their parents.`));
  const holder = el("div", { class: "flame-holder" });
  box.append(holder);
  after(() => {
    if (tree.root.value === 0) {
      holder.append(message("empty", "No samples in this selection: widen the time range or remove a filter."));
      return;
    }
    current = new FlameGraph(holder, { tree, format, icicle, requests: tree.requests, onChange: (g) => flameStatus(status, g) });
    flameStatus(status, current);
    const search = params.get("search");
    if (search) {
      document.getElementById("flame-search").value = search;
      current.search(search);
    }
  });
  return [
    el("p", {}, link(`#/service/${encodeURIComponent(service)}`, `← ${service}`)),
    el("h1", {}, "Flame graph"),
    filters,
    el("p", { class: "lead" }, `${tree.samples} samples, ${format(tree.root.value)}`, tree.requests > 0 ? `, ${tree.requests} requests: ${format(tree.root.value / tree.requests)} per request` : ""),
    box,
    el("h2", {}, "Top functions"),
    topTable(top, format),
  ];
}

function topTable(top, format) {
  const columns = [
    ["function", (f) => f.name],
    ["self", (f) => f.self_value],
    ["inclusive", (f) => f.inclusive_value],
    ["self per request", (f) => f.self_per_request ?? -1],
    ["inclusive per request", (f) => f.inclusive_per_request ?? -1],
    ["self share", (f) => f.self_share],
  ];
  const holder = el("div", { id: "top-functions" });
  const render = (k) => {
    const key = columns[k][1];
    const rows = [...top.functions].sort((a, b) => (k === 0 ? String(key(a)).localeCompare(key(b)) : key(b) - key(a)));
    holder.replaceChildren(
      table(
        columns.map((c) => c[0]),
        rows.map((f) =>
          el(
            "tr",
            {},
            el("td", { class: "fn" }, f.name),
            el("td", {}, format(f.self_value)),
            el("td", {}, format(f.inclusive_value)),
            el("td", {}, f.self_per_request != null ? format(f.self_per_request) : "—"),
            el("td", {}, f.inclusive_per_request != null ? format(f.inclusive_per_request) : "—"),
            el("td", {}, `${(f.self_share * 100).toFixed(2)}%`),
          ),
        ),
        { sort: render, sorted: k, class: "top" },
      ),
    );
  };
  render(1);
  return holder;
}

async function comparePage(params) {
  const service = params.get("service");
  if (!service) throw new ApiError("which service? open it from the services page");
  setTitle("compare", service);
  const { deploys } = await api(`/api/v1/services/${encodeURIComponent(service)}/deploys`);
  if (deploys.length < 2) return [el("h1", {}, `Compare deploys of ${service}`), message("empty", "This service has one deploy so far: a comparison needs two.")];
  const base = params.get("base") || deploys[deploys.length - 2].deploy;
  const candidate = params.get("candidate") || deploys[deploys.length - 1].deploy;
  const endpoint = params.get("endpoint");
  const pick = (name, value) =>
    el("select", { name, "aria-label": name }, deploys.map((d) => el("option", { value: d.deploy, selected: d.deploy === value }, d.deploy)));
  const form = el(
    "form",
    {
      class: "filters",
      onsubmit: (e) => {
        e.preventDefault();
        const f = new FormData(e.target);
        location.hash = `#/compare${query({ service, base: f.get("base"), candidate: f.get("candidate"), endpoint })}`;
      },
    },
    el("label", {}, "base ", pick("base", base)),
    el("label", {}, "candidate ", pick("candidate", candidate)),
    el("button", { type: "submit" }, "compare"),
  );
  const box = el("div", { class: "flame-box", id: "diff-flame" });
  after(() => diffFlame(box, { service, base, candidate, endpoint }, params.get("focus")));
  // Detection compares each deploy with the one before it: say what that
  // comparison could have seen.
  const k = deploys.findIndex((d) => d.deploy === candidate);
  const seen = k > 0 && deploys[k - 1].deploy === base ? (await api(`/api/v1/sensitivity${query({ service, deploy: candidate })}`)).sensitivity : null;
  return [
    el("p", {}, link(`#/service/${encodeURIComponent(service)}`, `← ${service}`)),
    el("h1", {}, `${service}: ${base} → ${candidate}`, endpoint != null ? ` (${endpoint})` : ""),
    form,
    box,
    ...(seen ? sensitivitySection(seen, endpoint) : []),
  ];
}

// "could see ≥ 1.8%" per endpoint and function: the smallest rise each
// test of this deploy comparison would catch, costliest first.
function sensitivitySection(seen, endpoint) {
  const rows = seen.rows.filter((r) => endpoint == null || r.endpoint === endpoint);
  const shown = rows.slice(0, 15);
  const needs = (r) =>
    r.more_for_target == null ? "" : r.more_for_target === 0 ? `sees ${pct(r.target)}` : `needs ${r.more_for_target} more windows a side to see ${pct(r.target)}`;
  return [
    el("h2", {}, "What this comparison could see"),
    el("p", { class: "lead" }, `The smallest rise each test would catch with 80% power (q ≤ ${seen.significance}, ${seen.tests} tests), from the window-to-window spread of ${seen.deploy_before} and ${seen.deploy_after}.`),
    table(
      ["endpoint", "function", "measure", "cost before", "windows", "could see", ""],
      shown.map((r) =>
        el(
          "tr",
          { "data-sensitivity": `${r.endpoint}|${r.function || ""}` },
          el("td", {}, r.endpoint || "(outside requests)"),
          el("td", {}, r.function ? `${r.function} (${r.metric})` : "(endpoint total)"),
          el("td", { class: "measure" }, measureName(r.measure)),
          el("td", {}, measureFormat(r.measure, seen.unit)(r.before)),
          el("td", {}, `${r.observations[0]} / ${r.observations[1]}`),
          el("td", { class: "mde" }, r.mde != null ? `≥ ${pct(r.mde).replace("+", "")}` : "untested (too few samples)"),
          el("td", {}, needs(r)),
        ),
      ),
      { class: "sensitivity" },
    ),
    rows.length > shown.length ? el("p", { class: "note" }, `${rows.length - shown.length} cheaper functions not shown.`) : [],
    notCompared(seen),
  ];
}

// ---- routing -----------------------------------------------------------

async function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, search] = hash.split("?");
  const params = new URLSearchParams(search || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (current) current.destroy();
  current = null;
  pendingAfter = [];
  app.replaceChildren(el("p", { class: "loading" }, "Loading…"));
  try {
    let page;
    if (parts.length === 0) page = await servicesPage();
    else if (parts[0] === "service" && parts[1]) page = await servicePage(parts[1], params);
    else if (parts[0] === "regression" && parts[1]) page = await regressionPage(parts[1]);
    else if (parts[0] === "flame") page = await flamePage(params);
    else if (parts[0] === "compare") page = await comparePage(params);
    else throw new ApiError(`no page at ${hash}`);
    app.replaceChildren(...[page].flat());
    for (const f of pendingAfter) await f();
    app.dataset.ready = hash;
  } catch (e) {
    app.replaceChildren(
      message("error", el("h2", {}, "Could not show this page"), el("p", {}, e.message), el("p", {}, link("#/", "back to the services"))),
    );
    app.dataset.ready = hash;
    if (!(e instanceof ApiError)) throw e;
  }
}

document.getElementById("token").addEventListener("click", () => {
  const token = prompt("Analyzer token (empty to clear):", localStorage.getItem("flameshift-token") || "");
  if (token === null) return;
  if (token) localStorage.setItem("flameshift-token", token);
  else localStorage.removeItem("flameshift-token");
  route();
});
window.addEventListener("hashchange", route);
route();

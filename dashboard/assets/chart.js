// Line charts in SVG: cost per request over time, one line per series,
// with vertical markers (deploys, change points). Text goes in through
// textContent only.
"use strict";

const NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#d1495b", "#00798c", "#edae49", "#30638e", "#66a182", "#8d96a3", "#7b2d8e", "#2e4057"];

function svg(tag, attrs) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

// lines: [{ name, points: [{ t, v }] }]; markers: [{ t, label, kind }];
// format: value → text.
export function lineChart(lines, markers, format) {
  const width = 900;
  const height = 260;
  const pad = { left: 80, right: 16, top: 16, bottom: 28 };
  const all = lines.flatMap((l) => l.points).filter((p) => p.v != null);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  if (all.length === 0) return root;
  const ts = all.map((p) => p.t).concat(markers.map((m) => m.t));
  const t0 = Math.min(...ts);
  const t1 = Math.max(...ts, t0 + 1);
  const v1 = Math.max(...all.map((p) => p.v)) * 1.1 || 1;
  const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (v / v1) * (height - pad.top - pad.bottom);
  for (let k = 0; k <= 4; k++) {
    const v = (v1 * k) / 4;
    root.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: "grid" }));
    const label = svg("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" });
    label.textContent = format(v);
    root.append(label);
  }
  for (const [at, anchor] of [[t0, "start"], [(t0 + t1) / 2, "middle"], [t1, "end"]]) {
    const label = svg("text", { x: x(at), y: height - 8, "text-anchor": anchor, class: "axis" });
    label.textContent = new Date(at).toISOString().slice(5, 16).replace("T", " ");
    root.append(label);
  }
  for (const m of markers) {
    root.append(svg("line", { x1: x(m.t), x2: x(m.t), y1: pad.top, y2: height - pad.bottom, class: `marker ${m.kind}` }));
    const label = svg("text", { x: x(m.t) + 3, y: pad.top + 10, class: `marker-label ${m.kind}` });
    label.textContent = m.label;
    root.append(label);
  }
  lines.forEach((line, k) => {
    const pts = line.points.filter((p) => p.v != null).sort((a, b) => a.t - b.t);
    const colour = PALETTE[k % PALETTE.length];
    const path = pts.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join("");
    const el = svg("path", { d: path, fill: "none", stroke: colour, "stroke-width": 2, class: "series" });
    const title = svg("title");
    title.textContent = line.name;
    el.append(title);
    root.append(el);
  });
  return root;
}

export function legend(lines) {
  const box = document.createElement("div");
  box.className = "legend";
  lines.forEach((line, k) => {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = PALETTE[k % PALETTE.length];
    item.append(swatch, document.createTextNode(line.name || "(outside requests)"));
    box.append(item);
  });
  return box;
}

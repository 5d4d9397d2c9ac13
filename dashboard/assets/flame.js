// The flame graph: a canvas renderer over the analyzer's JSON trees.
// Nodes are flattened once into typed arrays (start, width, depth), so a
// redraw is one pass over them, skipping what is narrower than a pixel;
// this keeps zoom, search and hover smooth at 100,000 nodes.
"use strict";

const ROW = 18;

// Flattens a tree. `size(node)` is its width in value units; children are
// laid out left to right from their parent's start.
function flatten(root, size) {
  const nodes = [];
  const walk = (node, start, depth, parent) => {
    const index = nodes.length;
    const width = size(node);
    nodes.push({ node, start, width, depth, parent });
    let x = start;
    for (const child of node.children || []) {
      walk(child, x, depth + 1, index);
      x += size(child);
    }
  };
  walk(root, 0, 0, -1);
  const n = nodes.length;
  const start = new Float64Array(n);
  const width = new Float64Array(n);
  const depth = new Uint16Array(n);
  const parent = new Int32Array(n);
  let maxDepth = 0;
  nodes.forEach((e, i) => {
    start[i] = e.start;
    width[i] = e.width;
    depth[i] = e.depth;
    parent[i] = e.parent;
    if (e.depth > maxDepth) maxDepth = e.depth;
  });
  return { nodes: nodes.map((e) => e.node), start, width, depth, parent, maxDepth };
}

// Colour of a node of a plain flame graph: warm, stable per name.
function warm(name) {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  const r = 205 + (h % 50);
  const g = 80 + ((h >> 8) % 120);
  const b = 40 + ((h >> 16) % 40);
  return `rgb(${r},${g},${b})`;
}

// Colour of a diff node by relative change: red rises, blue falls,
// saturated at ±50%.
export function diffColour(relative) {
  const t = Math.max(-1, Math.min(1, relative / 0.5));
  if (t >= 0) {
    const c = Math.round(235 - 175 * t);
    return `rgb(235,${c},${c})`;
  }
  const c = Math.round(235 + 175 * t);
  return `rgb(${c},${c},235)`;
}

export class FlameGraph {
  // options: { tree, diff (a /diff?format=tree answer) | null, unit,
  // requests, icicle, onChange }
  constructor(container, options) {
    this.container = container;
    this.options = options;
    this.diff = options.diff || null;
    const scale = this.diff ? this.diff.scale : 1;
    const root = this.diff ? this.diff.root : options.tree.root;
    this.size = this.diff ? (n) => n.base * scale + n.candidate : (n) => n.value;
    this.flat = flatten(root, this.size);
    this.focus = 0;
    this.query = "";
    this.matched = null;
    this.hover = -1;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "flame-canvas";
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-label", "flame graph");
    this.tooltip = document.createElement("div");
    this.tooltip.className = "tooltip";
    this.tooltip.hidden = true;
    container.append(this.canvas, this.tooltip);
    this.canvas.addEventListener("mousemove", (e) => this.onMove(e));
    this.canvas.addEventListener("mouseleave", () => {
      this.hover = -1;
      this.tooltip.hidden = true;
    });
    this.canvas.addEventListener("click", (e) => {
      const i = this.hit(e);
      if (i >= 0) this.zoom(i);
    });
    this.resize = () => this.draw();
    window.addEventListener("resize", this.resize);
    this.draw();
  }

  // Index of the first node named `name` (widest first), or -1.
  find(name) {
    let best = -1;
    for (let i = 0; i < this.flat.nodes.length; i++) {
      if (this.flat.nodes[i].name === name && (best < 0 || this.flat.width[i] > this.flat.width[best])) best = i;
    }
    return best;
  }

  zoom(index) {
    this.focus = index;
    this.draw();
    this.changed();
  }

  reset() {
    this.zoom(0);
  }

  // Highlights nodes whose name contains `query` (case-insensitive);
  // returns the matched share of the root: matches under another match
  // are counted once.
  search(query) {
    this.query = query;
    if (!query) {
      this.matched = null;
      this.draw();
      this.changed();
      return 0;
    }
    const q = query.toLowerCase();
    const { nodes, width, parent } = this.flat;
    const matched = new Uint8Array(nodes.length);
    let total = 0;
    for (let i = 0; i < nodes.length; i++) {
      if (!nodes[i].name.toLowerCase().includes(q)) continue;
      matched[i] = 1;
      let p = parent[i];
      let covered = false;
      while (p >= 0) {
        if (matched[p]) {
          covered = true;
          break;
        }
        p = parent[p];
      }
      if (!covered) total += width[i];
    }
    this.matched = matched;
    this.matchedShare = width[0] > 0 ? total / width[0] : 0;
    this.draw();
    this.changed();
    return this.matchedShare;
  }

  changed() {
    if (this.options.onChange) this.options.onChange(this);
  }

  destroy() {
    window.removeEventListener("resize", this.resize);
  }

  layout() {
    const { start, width, depth, maxDepth } = this.flat;
    const f = this.focus;
    const x0 = start[f];
    const w0 = width[f] || 1;
    const px = this.canvas.clientWidth || this.container.clientWidth || 800;
    const rows = maxDepth + 1;
    return { x0, w0, px, rows, start, width, depth, fd: depth[f] };
  }

  // Canvas rectangle of node `i`, or null when off screen.
  rect(i, l) {
    const { start, width, depth } = this.flat;
    let x;
    let w;
    if (depth[i] < l.fd) {
      // Ancestors of the focus span the full width.
      let p = this.focus;
      while (p >= 0 && p !== i) p = this.flat.parent[p];
      if (p !== i) return null;
      x = 0;
      w = l.px;
    } else {
      x = ((start[i] - l.x0) / l.w0) * l.px;
      w = (width[i] / l.w0) * l.px;
      if (x + w <= 0 || x >= l.px) return null;
    }
    const row = this.options.icicle ? depth[i] : l.rows - 1 - depth[i];
    return { x, y: row * ROW, w, h: ROW - 1 };
  }

  draw() {
    const l = this.layout();
    const ratio = window.devicePixelRatio || 1;
    this.canvas.style.height = `${l.rows * ROW}px`;
    this.canvas.width = Math.floor(l.px * ratio);
    this.canvas.height = Math.floor(l.rows * ROW * ratio);
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, l.px, l.rows * ROW);
    ctx.font = "12px ui-monospace, SFMono-Regular, Menlo, monospace";
    ctx.textBaseline = "middle";
    const { nodes } = this.flat;
    this.drawn = 0;
    for (let i = 0; i < nodes.length; i++) {
      if ((this.flat.width[i] / l.w0) * l.px < 0.5 && this.flat.depth[i] >= l.fd) continue;
      const r = this.rect(i, l);
      if (!r || r.w < 0.5) continue;
      this.drawn++;
      const node = nodes[i];
      let fill = this.diff ? diffColour(this.relative(node)) : warm(node.name);
      if (this.matched) fill = this.matched[i] ? "rgb(200,60,200)" : this.diff ? fill : "rgb(215,215,215)";
      ctx.fillStyle = fill;
      ctx.fillRect(r.x, r.y, Math.max(r.w - 0.5, 0.5), r.h);
      if (r.w > 30) {
        ctx.fillStyle = "#111";
        const label = fitText(ctx, node.name, r.w - 6);
        if (label) ctx.fillText(label, r.x + 3, r.y + r.h / 2);
      }
    }
  }

  // Relative change of a diff node's inclusive cost.
  relative(node) {
    const before = node.base * this.diff.scale;
    if (before <= 0) return node.candidate > 0 ? 1 : 0;
    return node.candidate / before - 1;
  }

  hit(e) {
    const box = this.canvas.getBoundingClientRect();
    const x = e.clientX - box.left;
    const y = e.clientY - box.top;
    const l = this.layout();
    const rowIndex = Math.floor(y / ROW);
    const depth = this.options.icicle ? rowIndex : l.rows - 1 - rowIndex;
    const { nodes } = this.flat;
    for (let i = 0; i < nodes.length; i++) {
      if (this.flat.depth[i] !== depth) continue;
      const r = this.rect(i, l);
      if (r && x >= r.x && x < r.x + r.w) return i;
    }
    return -1;
  }

  // What the tooltip says about node `i`.
  describe(i) {
    const node = this.flat.nodes[i];
    const fmt = this.options.format;
    const lines = [node.name];
    if (this.diff) {
      const d = this.diff;
      const per = (v, n) => (d.per_request && n > 0 ? `${fmt(v / n)} per request` : fmt(v));
      lines.push(`before (${d.base}): ${per(node.base, d.base_requests)}`);
      lines.push(`after (${d.candidate}): ${per(node.candidate, d.candidate_requests)}`);
      const rel = this.relative(node);
      lines.push(`change: ${rel >= 0 ? "+" : ""}${(rel * 100).toFixed(1)}%`);
    } else {
      const root = this.flat.nodes[0].value || 1;
      lines.push(`${fmt(node.value)} (${((node.value / root) * 100).toFixed(2)}%), self ${fmt(node.self)}`);
      const requests = this.options.requests;
      if (requests > 0) lines.push(`${fmt(node.value / requests)} per request`);
    }
    return lines;
  }

  onMove(e) {
    const i = this.hit(e);
    this.hover = i;
    if (i < 0) {
      this.tooltip.hidden = true;
      return;
    }
    this.tooltip.replaceChildren(
      ...this.describe(i).map((text, k) => {
        const line = document.createElement(k === 0 ? "strong" : "div");
        line.textContent = text;
        return line;
      }),
    );
    this.tooltip.hidden = false;
    const box = this.container.getBoundingClientRect();
    this.tooltip.style.left = `${Math.min(e.clientX - box.left + 12, box.width - 260)}px`;
    this.tooltip.style.top = `${e.clientY - box.top + 14}px`;
  }
}

function fitText(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  const chars = Math.floor(width / 7.2) - 1;
  return chars >= 2 ? `${text.slice(0, chars)}…` : "";
}

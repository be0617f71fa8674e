// Small SVG charts drawn by hand: stacked bars per minute and lines per series.

const NS = "http://www.w3.org/2000/svg";
const W = 600;
const H = 200;
const PAD = { left: 40, right: 8, top: 10, bottom: 22 };
export const PALETTE = ["#1f6feb", "#d29922", "#8250df", "#1a7f37", "#cf222e", "#0a7ea4"];

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step;
  return 10 * step;
}

function frame(svg, max, n, startMs) {
  const plotH = H - PAD.top - PAD.bottom;
  for (const f of [0, 0.5, 1]) {
    const y = PAD.top + plotH * (1 - f);
    svg.append(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: "axis" }));
    svg.append(el("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end" },
      String(Math.round(max * f * 10) / 10)));
  }
  const plotW = W - PAD.left - PAD.right;
  for (const ago of [60, 45, 30, 15, 0]) {
    const i = n - ago;
    const x = PAD.left + (plotW * Math.min(i, n - 0.5)) / n;
    const label = ago === 0 ? "now" : `−${ago}m`;
    svg.append(el("text", { x, y: H - 6, "text-anchor": "middle" }, label));
  }
  return { plotW, plotH };
}

function svgRoot(label) {
  return el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label });
}

/** Stacked bars: completed (green) under failed (red), one per minute. */
export function barChart(container, { completed, failed, label }) {
  const n = completed.length;
  const totals = completed.map((c, i) => c + failed[i]);
  const max = niceMax(Math.max(...totals, 0));
  const svg = svgRoot(label);
  const { plotW, plotH } = frame(svg, max, n);
  const bw = plotW / n;
  completed.forEach((c, i) => {
    const x = PAD.left + i * bw + 1;
    const hc = (plotH * c) / max;
    const hf = (plotH * failed[i]) / max;
    const base = PAD.top + plotH;
    if (c) {
      const r = el("rect", { x, y: base - hc, width: Math.max(bw - 2, 1), height: hc, class: "bar-ok" });
      r.append(el("title", {}, `${c} completed`));
      svg.append(r);
    }
    if (failed[i]) {
      const r = el("rect", { x, y: base - hc - hf, width: Math.max(bw - 2, 1), height: hf, class: "bar-bad" });
      r.append(el("title", {}, `${failed[i]} failed`));
      svg.append(r);
    }
  });
  container.replaceChildren(svg, legend([["completed", "var(--ok)"], ["failed", "var(--bad)"]]));
}

/** One line per series; minutes without runs are gaps, not zeros. */
export function lineChart(container, { series, label }) {
  const n = series.length ? series[0].values.length : 60;
  const all = series.flatMap((s) => s.values.filter((v) => v !== null));
  const max = niceMax(Math.max(...all, 0));
  const svg = svgRoot(label);
  const { plotW, plotH } = frame(svg, max, n);
  const step = plotW / n;
  series.forEach((s, k) => {
    const color = PALETTE[k % PALETTE.length];
    let path = "";
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null) {
        pen = false;
        return;
      }
      const x = PAD.left + step * (i + 0.5);
      const y = PAD.top + plotH * (1 - v / max);
      path += `${pen ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
      pen = true;
      const dot = el("circle", { cx: x, cy: y, r: 2.5, fill: color });
      dot.append(el("title", {}, `${s.name}: ${v} ms`));
      svg.append(dot);
    });
    if (path) svg.append(el("path", { d: path, fill: "none", stroke: color, "stroke-width": 2 }));
  });
  container.replaceChildren(
    svg,
    legend(series.map((s, k) => [s.name, PALETTE[k % PALETTE.length]])),
  );
}

function legend(items) {
  const ul = document.createElement("ul");
  ul.className = "legend";
  for (const [name, color] of items) {
    const li = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.style.background = color;
    li.append(swatch, name);
    ul.append(li);
  }
  return ul;
}

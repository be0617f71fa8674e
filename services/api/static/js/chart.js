// Small SVG charts drawn by hand, with their axes' units and a tooltip per minute:
// stacked bars per minute and lines per series.

const NS = "http://www.w3.org/2000/svg";
const W = 600;
const H = 220;
const PAD = { left: 48, right: 10, top: 22, bottom: 34 };
export const PALETTE = ["#1f6feb", "#b35900", "#8250df", "#1a7f37", "#cf222e", "#0a7ea4"];

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

const clock = (ms) => new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" }).format(ms);
const num = (v) => new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 }).format(v);

/** Grid lines with the y axis' values and unit, the x axis' clock times and its title. */
function frame(svg, { max, n, startMs, yUnit, xTitle }) {
  const plotH = H - PAD.top - PAD.bottom;
  const plotW = W - PAD.left - PAD.right;
  for (const f of [0, 0.5, 1]) {
    const y = PAD.top + plotH * (1 - f);
    svg.append(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: "axis" }));
    svg.append(el("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end" }, num(max * f)));
  }
  svg.append(el("text", { x: 4, y: 12, class: "unit" }, yUnit));
  for (let i = 0; i <= n; i += 15) {
    const last = i >= n;
    const x = last ? W - PAD.right : PAD.left + (plotW * i) / n;
    const label = last ? "now" : clock(startMs + i * 60_000);
    svg.append(el("text", { x, y: H - 18, "text-anchor": last ? "end" : i ? "middle" : "start" }, label));
  }
  svg.append(el("text", { x: PAD.left + plotW / 2, y: H - 3, "text-anchor": "middle", class: "unit" }, xTitle));
  return { plotW, plotH };
}

function svgRoot(label) {
  return el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label });
}

/** A tooltip per minute: hovering (or touching) a minute's column says what it holds. */
function tooltips(container, svg, { n, plotW, plotH, tip }) {
  const box = document.createElement("div");
  box.className = "chart-tip";
  box.hidden = true;
  box.setAttribute("role", "status");
  const step = plotW / n;
  const hover = el("rect", { class: "hover", y: PAD.top, height: plotH, width: step, x: 0 });
  hover.style.display = "none";
  svg.append(hover);
  const show = (e) => {
    const r = svg.getBoundingClientRect();
    const x = ((e.clientX - r.left) / r.width) * W;
    const i = Math.floor((x - PAD.left) / step);
    if (i < 0 || i >= n) {
      hide();
      return;
    }
    hover.setAttribute("x", PAD.left + i * step);
    hover.style.display = "";
    box.textContent = tip(i);
    box.hidden = false;
    // Kept inside the chart, whatever its width.
    const left = e.clientX - container.getBoundingClientRect().left;
    const half = Math.min(box.offsetWidth, container.clientWidth) / 2;
    box.style.left = `${Math.min(Math.max(left, half), container.clientWidth - half)}px`;
  };
  const hide = () => {
    box.hidden = true;
    hover.style.display = "none";
  };
  svg.addEventListener("pointermove", show);
  svg.addEventListener("pointerdown", show);
  svg.addEventListener("pointerleave", hide);
  return box;
}

/** Stacked bars: completed (green) under failed (red), one per minute. */
export function barChart(container, { completed, failed, startMs, label, yUnit, xTitle }) {
  const n = completed.length;
  const totals = completed.map((c, i) => c + failed[i]);
  const max = niceMax(Math.max(...totals, 0));
  const svg = svgRoot(label);
  const { plotW, plotH } = frame(svg, { max, n, startMs, yUnit, xTitle });
  const bw = plotW / n;
  const base = PAD.top + plotH;
  completed.forEach((c, i) => {
    const x = PAD.left + i * bw + 1;
    const hc = (plotH * c) / max;
    const hf = (plotH * failed[i]) / max;
    if (c) svg.append(el("rect", { x, y: base - hc, width: Math.max(bw - 2, 1), height: hc, class: "bar-ok" }));
    if (failed[i]) svg.append(el("rect", { x, y: base - hc - hf, width: Math.max(bw - 2, 1), height: hf, class: "bar-bad" }));
  });
  const tip = tooltips(container, svg, {
    n,
    plotW,
    plotH,
    tip: (i) => `${clock(startMs + i * 60_000)} · ${num(completed[i])} completed, ${num(failed[i])} failed jobs`,
  });
  container.replaceChildren(svg, tip, legend([["completed jobs", "var(--ok)"], ["failed jobs", "var(--bad)"]]));
}

/** One line per series; minutes without runs are gaps, not zeros. */
export function lineChart(container, { series, startMs, label, yUnit, xTitle, unit }) {
  const n = series.length ? series[0].values.length : 60;
  const all = series.flatMap((s) => s.values.filter((v) => v !== null));
  const max = niceMax(Math.max(...all, 0));
  const svg = svgRoot(label);
  const { plotW, plotH } = frame(svg, { max, n, startMs, yUnit, xTitle });
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
      svg.append(el("circle", { cx: x, cy: y, r: 2.5, fill: color }));
    });
    if (path) svg.append(el("path", { d: path, fill: "none", stroke: color, "stroke-width": 2 }));
  });
  const tip = tooltips(container, svg, {
    n,
    plotW,
    plotH,
    tip: (i) => {
      const values = series.filter((s) => s.values[i] !== null).map((s) => `${s.name} ${num(s.values[i])} ${unit}`);
      return `${clock(startMs + i * 60_000)} · ${values.length ? values.join(", ") : "no runs"}`;
    },
  });
  container.replaceChildren(svg, tip, legend(series.map((s, k) => [s.name, PALETTE[k % PALETTE.length]])));
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

// The dashboard's own line chart, in SVG: several series, the values under the pointer, drag to
// zoom to a range of steps (double-click to zoom out), a log-scale toggle. Series arrive already
// downsampled by the API (max_points), so a million-point job draws as fast as a small one.

import { h, s, number } from "./dom.js";

const COLORS = ["#1d4ed8", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#be185d"];
const W = 600, H = 220, M = { l: 54, r: 12, t: 10, b: 24 };

function ticks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((m) => m >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}

function nearest(points, x) {
  let lo = 0, hi = points.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (points[mid][0] < x) lo = mid; else hi = mid;
  }
  return Math.abs(points[lo][0] - x) <= Math.abs(points[hi][0] - x) ? points[lo] : points[hi];
}

export function lineChart(title, { xLabel = "step" } = {}) {
  let series = [], zoom = null, log = false, drag = null;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", "data-title": title });
  const readout = h("div", { class: "readout" });
  const legend = h("div", { class: "legend" });
  const logBox = h("input", { type: "checkbox", onchange: () => { log = logBox.checked; draw(); } });
  const el = h("div", { class: "chart", "data-chart": title },
    h("div", { class: "chart-head" }, h("span", {}, title), h("label", {}, logBox, " log scale")), svg, legend, readout);

  function domain() {
    const all = series.flatMap((one) => one.points);
    let [x0, x1] = zoom || [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    const shown = all.filter((p) => p[0] >= x0 && p[0] <= x1 && Number.isFinite(p[1]) && (!log || p[1] > 0)).map((p) => (log ? Math.log10(p[1]) : p[1]));
    let y0 = Math.min(...shown), y1 = Math.max(...shown);
    if (!shown.length) { y0 = 0; y1 = 1; }
    if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
    const pad = (y1 - y0) * 0.05;
    return { x0, x1, y0: y0 - pad, y1: y1 + pad };
  }

  function draw() {
    svg.replaceChildren();
    legend.replaceChildren(...series.map((one, i) => h("span", {}, colorKey(i), one.name)));
    if (!series.some((one) => one.points.length)) {
      svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#667085", "font-size": 12 }, "no points yet"));
      return;
    }
    const d = domain();
    const sx = (x) => M.l + ((x - d.x0) / (d.x1 - d.x0)) * (W - M.l - M.r);
    const sy = (y) => H - M.b - (((log ? Math.log10(y) : y) - d.y0) / (d.y1 - d.y0)) * (H - M.t - M.b);
    for (const t of ticks(d.y0, d.y1)) {
      const y = H - M.b - ((t - d.y0) / (d.y1 - d.y0)) * (H - M.t - M.b);
      svg.append(s("line", { x1: M.l, x2: W - M.r, y1: y, y2: y, stroke: "#eef0f3" }),
        s("text", { x: M.l - 6, y: y + 4, "text-anchor": "end", "font-size": 10, fill: "#667085" }, log ? number(10 ** t, 3) : number(t, 3)));
    }
    for (const t of ticks(d.x0, d.x1, 6)) {
      svg.append(s("text", { x: sx(t), y: H - 6, "text-anchor": "middle", "font-size": 10, fill: "#667085" }, number(t, 6)));
    }
    series.forEach((one, i) => {
      const visible = one.points.filter((p) => p[0] >= d.x0 && p[0] <= d.x1 && Number.isFinite(p[1]) && (!log || p[1] > 0));
      if (!visible.length) return;
      const path = visible.map((p, j) => `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
      svg.append(s("path", { d: path, fill: "none", stroke: COLORS[i % COLORS.length], "stroke-width": 1.6,
        "vector-effect": "non-scaling-stroke", "data-series": one.name, "data-points": visible.length }));
      if (visible.length === 1) svg.append(s("circle", { cx: sx(visible[0][0]), cy: sy(visible[0][1]), r: 3, fill: COLORS[i % COLORS.length] }));
    });
    const cursor = s("line", { y1: M.t, y2: H - M.b, stroke: "#98a2b3", "stroke-dasharray": "3 3", visibility: "hidden" });
    const band = s("rect", { y: M.t, height: H - M.t - M.b, fill: "rgba(29,78,216,.12)", visibility: "hidden" });
    svg.append(cursor, band);
    const toX = (event) => {
      const box = svg.getBoundingClientRect();
      const px = ((event.clientX - box.left) / box.width) * W;
      return { px, x: d.x0 + ((px - M.l) / (W - M.l - M.r)) * (d.x1 - d.x0) };
    };
    svg.onpointermove = (event) => {
      const { px, x } = toX(event);
      cursor.setAttribute("x1", px); cursor.setAttribute("x2", px); cursor.setAttribute("visibility", "visible");
      const parts = series.filter((one) => one.points.length).map((one) => {
        const p = nearest(one.points, x);
        return `${one.name} ${number(p[1])} @ ${xLabel} ${p[0]}`;
      });
      readout.textContent = parts.join("  ·  ");
      if (drag) {
        band.setAttribute("x", Math.min(drag, px)); band.setAttribute("width", Math.abs(px - drag)); band.setAttribute("visibility", "visible");
      }
    };
    svg.onpointerleave = () => { cursor.setAttribute("visibility", "hidden"); };
    svg.onpointerdown = (event) => { drag = toX(event).px; };
    svg.onpointerup = (event) => {
      const start = drag;
      drag = null;
      band.setAttribute("visibility", "hidden");
      if (start === null) return;
      const { px } = toX(event);
      if (Math.abs(px - start) < 6) return;
      const a = d.x0 + ((Math.min(start, px) - M.l) / (W - M.l - M.r)) * (d.x1 - d.x0);
      const b = d.x0 + ((Math.max(start, px) - M.l) / (W - M.l - M.r)) * (d.x1 - d.x0);
      zoom = [a, b];
      draw();
    };
    svg.ondblclick = () => { zoom = null; draw(); };
  }

  function colorKey(i) {
    const key = h("i");
    key.style.background = COLORS[i % COLORS.length];
    return key;
  }

  return {
    el,
    // series: [{name, points: [[x, y], ...] sorted by x}]
    set(next) { series = next; draw(); },
  };
}

// Compare 2-8 jobs: each metric's curves overlaid, one chart per metric, and the spec fields
// whose values differ between them.

import { get } from "../api.js";
import { lineChart } from "../chart.js";
import { badge, clear, h } from "../dom.js";

export function flatten(value, path = "", out = {}) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, path ? `${path}.${k}` : k, out);
  } else {
    out[path] = JSON.stringify(value);
  }
  return out;
}

export function differing(specs) {
  const flat = specs.map((spec) => flatten(spec));
  const paths = [...new Set(flat.flatMap(Object.keys))].sort();
  return paths.filter((p) => new Set(flat.map((f) => f[p] ?? "—")).size > 1).map((p) => [p, flat.map((f) => f[p] ?? "—")]);
}

export async function comparePage(query, { main }) {
  const ids = (query.get("ids") || "").split(",").filter(Boolean);
  if (ids.length < 2 || ids.length > 8) {
    clear(main, h("h1", {}, "Compare"), h("p", { class: "muted" }, "Tick 2 to 8 jobs on the ", h("a", { href: "#/jobs" }, "Jobs"),
      " page and press Compare picked."));
    return;
  }
  const jobs = await Promise.all(ids.map((id) => get(`/v1/jobs/${id}`)));
  const metrics = await Promise.all(ids.map((id) => get(`/v1/jobs/${id}/metrics`, { max_points: 500 })));
  const label = (job) => (jobs.filter((j) => j.name === job.name).length > 1 ? `${job.name} (${job.id.slice(4, 10)})` : job.name);
  const names = [...new Set(metrics.flatMap((m) => Object.keys(m.series)))].sort();
  const charts = h("div", { class: "charts", id: "charts" });
  for (const name of names) {
    const chart = lineChart(name);
    charts.append(chart.el);
    chart.set(jobs.map((job, i) => ({ name: label(job), points: (metrics[i].series[name] || []).map((p) => [p.step, p.value]) })));
  }
  const rows = differing(jobs.map((job) => job.spec));
  clear(main, h("h1", {}, "Compare ", jobs.length, " jobs"),
    h("table", { id: "compared" }, h("thead", {}, h("tr", {}, h("th", {}, "job"), h("th", {}, "state"))),
      h("tbody", {}, jobs.map((job) => h("tr", {}, h("td", {}, h("a", { href: `#/jobs/${job.id}` }, label(job))), h("td", {}, badge(job.state)))))),
    h("h2", {}, "Spec fields that differ"),
    rows.length ? h("table", { id: "spec-diff" },
      h("thead", {}, h("tr", {}, h("th", {}, "field"), jobs.map((job) => h("th", {}, label(job))))),
      h("tbody", {}, rows.map(([path, values]) => h("tr", { "data-field": path }, h("td", {}, path), values.map((v) => h("td", {}, v))))))
      : h("p", { class: "muted" }, "Their specs are the same."),
    h("h2", {}, "Curves"), charts);
}

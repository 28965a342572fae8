// One job: its state and progress, live curves of every metric (from the downsampled series, then
// grown by the event stream), its attempts and checkpoints, its log as it is written, its spec.

import { followEvents, get, post, request } from "../api.js";
import { lineChart } from "../chart.js";
import { badge, clear, duration, errorBox, h, number, progressBar, when } from "../dom.js";
import { elapsed } from "./jobs.js";

// Which chart a metric is drawn on: every loss together, every accuracy together, the rest alone.
export function chartOf(name) {
  if (name.includes("loss")) return "loss";
  if (name.includes("accuracy")) return "accuracy";
  return name.replaceAll("_", " ");
}

export function chartsOf(seriesByName) {
  const groups = new Map();
  for (const name of Object.keys(seriesByName).sort()) {
    const group = chartOf(name);
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(name);
  }
  const order = ["loss", "accuracy", "learning rate", "samples per second"];
  return [...groups.entries()].sort((a, b) => (order.indexOf(a[0]) + 1 || 99) - (order.indexOf(b[0]) + 1 || 99));
}

export async function jobPage(jobId, { signal, main }) {
  const [job, attempts, metrics, log] = await Promise.all([
    get(`/v1/jobs/${jobId}`), get(`/v1/jobs/${jobId}/attempts`),
    get(`/v1/jobs/${jobId}/metrics`, { max_points: 1000 }),
    request("GET", `/v1/jobs/${jobId}/logs`).then((r) => r.text()),
  ]);
  const series = {};
  for (const [name, points] of Object.entries(metrics.series)) series[name] = points.map((p) => [p.step, p.value]);

  const head = h("div", { class: "card", id: "job-head" });
  const charts = h("div", { class: "charts", id: "charts" });
  const logView = h("pre", { id: "log" });
  const attemptsBody = h("tbody");
  const modelArea = h("div", { id: "job-model" });
  const status = h("div");
  clear(main, h("h1", {}, "Job ", h("span", { id: "job-name" }, job.name)), status, head,
    h("h2", {}, "Curves"), charts,
    h("h2", {}, "Attempts and checkpoints"),
    h("table", { id: "attempts" }, h("thead", {}, h("tr", {}, ["attempt", "worker", "started", "ended", "outcome", "resumed from", "newest checkpoint", "peak memory"].map((t) => h("th", {}, t)))), attemptsBody),
    modelArea,
    h("h2", {}, "Log"), logView,
    h("h2", {}, "Spec"), h("pre", { id: "spec" }, JSON.stringify(job.spec, null, 2)));

  let current = job;
  function drawHead() {
    const j = current;
    clear(head, h("dl", { class: "kv" },
      h("dt", {}, "id"), h("dd", {}, j.id),
      h("dt", {}, "state"), h("dd", {}, badge(j.state), j.cancel_requested ? " (cancel asked for)" : ""),
      h("dt", {}, "progress"), h("dd", {}, progressBar(j.progress.fraction, j.state === "running" ? j.progress.eta_seconds : null),
        ` epoch ${j.progress.epoch}/${j.progress.epochs}, step ${j.progress.step}/${j.progress.total_steps}`),
      h("dt", {}, "architecture"), h("dd", {}, j.spec.model.architecture),
      h("dt", {}, "dataset"), h("dd", {}, j.spec.data.dataset.startsWith("builtin:") ? j.spec.data.dataset : h("a", { href: `#/datasets/${j.spec.data.dataset}` }, j.spec.data.dataset)),
      h("dt", {}, "created"), h("dd", {}, when(j.created_at)),
      h("dt", {}, "duration"), h("dd", {}, duration(elapsed(j))),
      h("dt", {}, "latest metrics"), h("dd", {}, Object.entries(j.metrics).map(([k, v]) => `${k} ${number(v)}`).join(", ")),
      j.error ? [h("dt", {}, "error"), h("dd", { class: "error-box" }, `${j.error.type}: ${j.error.message}`)] : null,
      h("dt", {}, "model"), h("dd", {}, j.model_id ? h("a", { href: `#/models/${j.model_id}`, id: "model-link" }, j.model_id) : "none yet")));
    const activeJob = j.state === "queued" || j.state === "running";
    if (activeJob && !j.cancel_requested) {
      head.append(h("button", { type: "button", onclick: async () => {
        try { current = await post(`/v1/jobs/${j.id}/cancel`); drawHead(); } catch (error) { clear(status, errorBox(error)); }
      } }, "Cancel"));
    }
  }

  function drawAttempts(list) {
    clear(attemptsBody, list.map((a) => h("tr", {},
      h("td", {}, a.attempt), h("td", {}, a.worker_id), h("td", {}, when(a.started_at)), h("td", {}, when(a.ended_at)),
      h("td", {}, a.outcome || ""), h("td", {}, a.resumed_from_step ?? ""), h("td", {}, a.checkpoint_step ?? ""),
      h("td", { class: "num" }, a.peak_memory_bytes ? `${number(a.peak_memory_bytes / 2 ** 20, 3)} MiB` : ""))));
    const checkpointed = list.some((a) => a.checkpoint_step);
    clear(modelArea, checkpointed ? h("div", { class: "row" }, "A model from a checkpoint:",
      ["latest", "best"].map((which) => h("button", { type: "button", onclick: async () => {
        try {
          const model = await post(`/v1/jobs/${jobId}/models`, { checkpoint: which });
          location.hash = `#/models/${model.id}`;
        } catch (error) { clear(status, errorBox(error)); }
      } }, which))) : null);
  }

  const shown = new Map();  // chart title -> chart
  function drawCharts() {
    const groups = chartsOf(series);
    if (!groups.length) { clear(charts, h("p", { class: "muted" }, "No metrics yet: the first arrive as the job trains.")); return; }
    if (!shown.size) charts.replaceChildren();
    for (const [title, names] of groups) {
      if (!shown.has(title)) { const chart = lineChart(title); shown.set(title, chart); charts.append(chart.el); }
      shown.get(title).set(names.map((name) => ({ name, points: series[name] })));
    }
  }

  drawHead();
  drawAttempts(attempts);
  drawCharts();
  logView.textContent = log;
  if (current.state !== "queued" && current.state !== "running") return;

  // Live: metric points grow the curves (redrawn at most 4 times a second), log lines append.
  let pending = null;
  const redraw = () => { pending = pending || setTimeout(() => { pending = null; if (!signal.aborted) drawCharts(); }, 250); };
  let logFromStream = "";
  followEvents(jobId, async (kind, data) => {
    if (signal.aborted) return;
    if (kind === "metric") {
      for (const p of data.points) {
        const points = series[p.name] || (series[p.name] = []);
        if (!points.length || points[points.length - 1][0] < p.step) points.push([p.step, p.value]);
      }
      redraw();
    } else if (kind === "log") {
      logFromStream += data.line;
      logView.textContent = logFromStream;  // the stream starts from the first line: the whole log
    } else if (kind === "progress") {
      current = { ...current, progress: { ...current.progress, ...data, fraction: data.total_steps ? data.step / data.total_steps : 0 } };
      drawHead();
    } else if (kind === "state" || kind === "end") {
      current = await get(`/v1/jobs/${jobId}`);
      drawHead();
      drawAttempts(await get(`/v1/jobs/${jobId}/attempts`));
    }
  }, signal);
}

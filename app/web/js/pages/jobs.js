// Jobs: newest first, a page at a time, filtered by state and label; the rows of queued and
// running jobs follow each job's event stream (progress, state, metrics) as it happens, and the page
// is read again every few seconds for new jobs; cancel from the row; tick jobs to compare them.

import { followEvents, get, post } from "../api.js";
import { badge, clear, duration, errorBox, h, number, progressBar, when } from "../dom.js";

const STATES = ["", "queued", "running", "succeeded", "failed", "cancelled"];
const PAGE = 50;
const STREAMS = 8;  // live rows at once (a tenant may hold KILN_MAX_STREAMS_PER_TENANT streams per API process)

export function elapsed(job) {
  if (!job.started_at) return null;
  const end = job.finished_at ? new Date(job.finished_at) : new Date();
  return (end - new Date(job.started_at)) / 1000;
}

export async function jobsPage(query, { signal, main }) {
  const state = query.get("state") || "";
  const label = query.get("label") || "";
  const cursors = [null];  // the cursor of each page seen, for "newer"
  const picked = new Set();
  const body = h("tbody");
  const status = h("div");
  const compare = h("button", { type: "button", id: "compare-picked", disabled: true, onclick: () => {
    location.hash = `#/compare?ids=${[...picked].join(",")}`;
  } }, "Compare picked");
  const older = h("button", { type: "button", id: "older", onclick: () => load(cursors.length) }, "Older →");
  const newer = h("button", { type: "button", id: "newer", onclick: () => load(cursors.length - 2) }, "← Newer");
  const filters = h("form", { class: "row", onsubmit: (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    if (stateSelect.value) params.set("state", stateSelect.value);
    if (labelInput.value.trim()) params.set("label", labelInput.value.trim());
    location.hash = `#/jobs${params.size ? `?${params}` : ""}`;
  } });
  const stateSelect = h("select", { id: "state-filter", "aria-label": "state", onchange: () => filters.requestSubmit() },
    STATES.map((s) => h("option", { value: s, selected: s === state }, s || "any state")));
  const labelInput = h("input", { id: "label-filter", placeholder: "label key:value", value: label, "aria-label": "label" });
  filters.append(stateSelect, labelInput, h("button", { type: "submit" }, "Filter"), compare);
  clear(main, h("h1", {}, "Jobs"), filters, status,
    h("table", { id: "jobs" }, h("thead", {}, h("tr", {}, ["", "name", "architecture", "dataset", "state", "progress", "val_accuracy", "train_loss", "created", "duration", ""].map((t) => h("th", {}, t)))), body),
    h("div", { class: "pager" }, newer, older));

  let page = 0, timer = null;
  const streams = new Map();  // job id -> its stream's AbortController

  // A live row: what the job's stream says lands in its cells (the row may have been redrawn since).
  function follow(jobId) {
    const controller = new AbortController();
    streams.set(jobId, controller);
    signal.addEventListener("abort", () => controller.abort());
    const cell = (name) => body.querySelector(`tr[data-job="${jobId}"] td.${name}`);
    followEvents(jobId, (kind, data) => {
      if (kind === "progress" && cell("progress")) {
        clear(cell("progress"), progressBar(data.total_steps ? data.step / data.total_steps : 0, data.eta_seconds));
      } else if (kind === "metric") {
        for (const point of data.points) if (cell(point.name)) cell(point.name).textContent = number(point.value);
      } else if ((kind === "state" || kind === "end") && cell("state")) {
        cell("state").parentElement.dataset.state = data.state;
        clear(cell("state"), badge(data.state));
      }
      if (kind === "end") { streams.delete(jobId); load(page); }  // its final metrics, duration, bar
    }, controller.signal).finally(() => streams.delete(jobId));
  }

  function row(job) {
    const spec = job.spec || {};
    const box = h("input", { type: "checkbox", "aria-label": `pick ${job.name}`, checked: picked.has(job.id), onchange: () => {
      if (box.checked) picked.add(job.id); else picked.delete(job.id);
      compare.disabled = picked.size < 2 || picked.size > 8;
    } });
    const active = job.state === "queued" || job.state === "running";
    const cancel = active ? h("button", { type: "button", class: "cancel", onclick: async () => {
      cancel.disabled = true;
      try { await post(`/v1/jobs/${job.id}/cancel`); } catch (error) { clear(status, errorBox(error)); }
      load(page);
    } }, job.cancel_requested ? "cancelling…" : "Cancel") : null;
    if (cancel && job.cancel_requested) cancel.disabled = true;
    return h("tr", { "data-job": job.id, "data-state": job.state },
      h("td", {}, box),
      h("td", {}, h("a", { href: `#/jobs/${job.id}`, class: "job-name" }, job.name)),
      h("td", {}, spec.model ? spec.model.architecture : ""),
      h("td", {}, spec.data ? spec.data.dataset : ""),
      h("td", { class: "state" }, badge(job.state)),
      h("td", { class: "progress" }, progressBar(job.progress.fraction, job.state === "running" ? job.progress.eta_seconds : null)),
      h("td", { class: "num val_accuracy" }, number(job.metrics.val_accuracy)),
      h("td", { class: "num train_loss" }, number(job.metrics.train_loss)),
      h("td", {}, when(job.created_at)),
      h("td", { class: "num" }, duration(elapsed(job))),
      h("td", {}, cancel));
  }

  async function load(index) {
    clearTimeout(timer);
    page = Math.max(0, index);
    try {
      const answer = await get("/v1/jobs", { state, label, limit: PAGE, cursor: cursors[page] });
      if (signal.aborted) return;
      cursors.length = page + 1;
      if (answer.next_cursor) cursors.push(answer.next_cursor);
      clear(body, answer.items.length ? answer.items.map(row) : h("tr", {}, h("td", { colspan: 11, class: "muted" }, "No jobs yet: submit one.")));
      older.disabled = !answer.next_cursor;
      newer.disabled = page === 0;
      clear(status);
      const active = answer.items.filter((job) => job.state === "queued" || job.state === "running").map((job) => job.id);
      for (const [jobId, controller] of streams) if (!active.includes(jobId)) { controller.abort(); streams.delete(jobId); }
      for (const jobId of active) if (!streams.has(jobId) && streams.size < STREAMS) follow(jobId);
      // Every live row has its stream: read the page again only for new jobs; else more often.
      if (!signal.aborted) timer = setTimeout(() => load(page), active.every((id) => streams.has(id)) ? 5000 : 1000);
    } catch (error) {
      if (!signal.aborted) { clear(status, errorBox(error)); timer = setTimeout(() => load(page), 5000); }
    }
  }
  signal.addEventListener("abort", () => clearTimeout(timer));
  await load(0);
}

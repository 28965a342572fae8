// Jobs: newest first, a page at a time, filtered by state and label, refreshed while any job on
// the page is queued or running; cancel from the row; tick jobs to compare them.

import { get, post } from "../api.js";
import { badge, clear, duration, errorBox, h, number, progressBar, when } from "../dom.js";

const STATES = ["", "queued", "running", "succeeded", "failed", "cancelled"];
const PAGE = 50;

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
      h("td", {}, badge(job.state)),
      h("td", {}, progressBar(job.progress.fraction, job.state === "running" ? job.progress.eta_seconds : null)),
      h("td", { class: "num" }, number(job.metrics.val_accuracy)),
      h("td", { class: "num" }, number(job.metrics.train_loss)),
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
      const live = answer.items.some((job) => job.state === "queued" || job.state === "running");
      if (!signal.aborted) timer = setTimeout(() => load(page), live ? 1000 : 5000);
    } catch (error) {
      if (!signal.aborted) { clear(status, errorBox(error)); timer = setTimeout(() => load(page), 5000); }
    }
  }
  signal.addEventListener("abort", () => clearTimeout(timer));
  await load(0);
}

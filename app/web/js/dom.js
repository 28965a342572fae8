// Elements built from data: every string goes in as text (never as HTML), so a job named
// <img src=x onerror=alert(1)> shows as that text.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const SVG = "http://www.w3.org/2000/svg";

export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  for (const child of children.flat()) if (child !== undefined && child !== null) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  const t = Math.round(seconds);
  const hours = Math.floor(t / 3600), minutes = Math.floor((t % 3600) / 60), secs = t % 60;
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${String(secs).padStart(2, "0")}` : `${minutes}:${String(secs).padStart(2, "0")}`;
}

export function number(value, digits = 4) {
  if (value === null || value === undefined) return "";
  if (!Number.isFinite(value)) return String(value);
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString("en");
  return Number(value.toPrecision(digits)).toString();
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString("en-GB", { dateStyle: "short", timeStyle: "medium" });
}

export function badge(state) {
  return h("span", { class: `badge ${state}`, "data-state": state }, state);
}

export function progressBar(fraction, eta) {
  const bar = h("span", { class: "bar", role: "progressbar", "aria-valuenow": Math.round((fraction || 0) * 100) }, h("span"));
  bar.firstChild.style.width = `${Math.round((fraction || 0) * 100)}%`;
  return h("span", {}, bar, h("span", { class: "eta" }, `${Math.round((fraction || 0) * 100)} %`, eta ? ` · ETA ${duration(eta)}` : ""));
}

export function errorBox(error) {
  return h("div", { class: "error-box", role: "alert" }, error.message || String(error));
}

// The dashboard's shell: sign in with a key (checked against the API, kept in sessionStorage),
// sign out, and a page per hash route (#/jobs, #/jobs/<id>, #/compare?ids=, #/submit,
// #/datasets, #/datasets/<id>, #/models, #/models/<id>).

import { ApiError, get, key } from "./api.js";
import { clear, errorBox, h } from "./dom.js";
import { comparePage } from "./pages/compare.js";
import { datasetPage, datasetsPage } from "./pages/datasets.js";
import { jobPage } from "./pages/job.js";
import { jobsPage } from "./pages/jobs.js";
import { modelPage, modelsPage } from "./pages/models.js";
import { submitPage } from "./pages/submit.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let leaving = new AbortController();  // a page's streams and timers stop when another page opens

const ROUTES = [
  [/^#\/jobs\/([\w-]+)$/, (m, ctx) => jobPage(m[1], ctx), "jobs"],
  [/^#\/compare(\?.*)?$/, (m, ctx) => comparePage(new URLSearchParams((m[1] || "").slice(1)), ctx), "compare"],
  [/^#\/submit$/, (m, ctx) => submitPage(ctx), "submit"],
  [/^#\/datasets\/([\w:?=.-]+)$/, (m, ctx) => datasetPage(decodeURIComponent(m[1]), ctx), "datasets"],
  [/^#\/datasets$/, (m, ctx) => datasetsPage(ctx), "datasets"],
  [/^#\/models\/([\w-]+)$/, (m, ctx) => modelPage(m[1], ctx), "models"],
  [/^#\/models$/, (m, ctx) => modelsPage(ctx), "models"],
  [/^#?\/?(jobs)?(\?.*)?$/, (m, ctx) => jobsPage(new URLSearchParams((m[2] || "").slice(1)), ctx), "jobs"],
];

function signIn(message) {
  nav.hidden = true;
  const input = h("input", { type: "password", id: "api-key", autocomplete: "off", placeholder: "kiln_…", "aria-label": "API key" });
  const status = h("div");
  const form = h("form", { class: "card signin", id: "sign-in", onsubmit: async (event) => {
    event.preventDefault();
    key.set(input.value.trim());
    try {
      await get("/v1/usage");  // a real call checks the key before any page uses it
      route();
    } catch (error) {
      key.clear();
      clear(status, errorBox(error instanceof ApiError && error.status === 401 ? new Error("That key is not valid (unknown, revoked or expired).") : error));
    }
  } },
  h("h1", {}, "Sign in to Kiln"),
  h("p", { class: "muted" }, "Paste an API key (", h("code", {}, "var/api-key"), " after ", h("code", {}, "make run"),
    "). It stays in this tab only, and goes to the API in a header, never in a URL."),
  message ? errorBox(new Error(message)) : null,
  h("label", { for: "api-key" }, "API key"), input, h("p"), h("button", { class: "primary", type: "submit" }, "Sign in"), status);
  clear(main, form);
  input.focus();
}

async function route() {
  leaving.abort();
  leaving = new AbortController();
  if (!key.get()) return signIn();
  nav.hidden = false;
  const hash = location.hash || "#/jobs";
  for (const [pattern, page, section] of ROUTES) {
    const match = hash.match(pattern);
    if (!match) continue;
    for (const link of nav.querySelectorAll("a")) link.classList.toggle("active", link.dataset.page === section);
    const ctx = { signal: leaving.signal, main };
    clear(main, h("p", { class: "muted" }, "Loading…"));
    try {
      await page(match, ctx);
    } catch (error) {
      if (!ctx.signal.aborted) clear(main, errorBox(error));
    }
    return;
  }
  clear(main, errorBox(new Error(`No page at ${hash}`)));
}

document.getElementById("sign-out").addEventListener("click", () => {
  key.clear();
  location.hash = "#/jobs";
  route();
});
window.addEventListener("kiln:signed-out", () => { key.clear(); leaving.abort(); signIn("The key stopped working; sign in again."); });
window.addEventListener("hashchange", route);
route();

// Datasets: the tenant's uploads (upload with a progress bar), and one dataset's preview grid and
// class counts.

import { blob, get, upload } from "../api.js";
import { clear, errorBox, h, number, when } from "../dom.js";

const FORMATS = ["npz", "csv", "idx", "image-zip", "sequences"];

export async function datasetsPage({ main }) {
  const [builtins, list] = await Promise.all([get("/v1/builtin-datasets"), get("/v1/datasets", { limit: 200 })]);
  const status = h("div", { id: "upload-status" });
  const files = h("input", { type: "file", multiple: true, id: "upload-files", "aria-label": "files" });
  const name = h("input", { type: "text", id: "upload-name", placeholder: "name" });
  const format = h("select", { id: "upload-format" }, FORMATS.map((f) => h("option", { value: f }, f)));
  const bar = h("progress", { max: 1, value: 0, id: "upload-progress", hidden: true });
  const form = h("form", { class: "card row", id: "upload", onsubmit: async (event) => {
    event.preventDefault();
    const body = new FormData();
    for (const file of files.files) body.append("file", file);
    body.append("name", name.value || (files.files[0] ? files.files[0].name : ""));
    body.append("format", format.value);
    bar.hidden = false;
    clear(status);
    try {
      const dataset = await upload("/v1/datasets", body, (fraction) => { bar.value = fraction; });
      location.hash = `#/datasets/${dataset.id}`;
    } catch (error) {
      clear(status, errorBox(error));
    } finally {
      bar.hidden = true;
    }
  } }, files, name, format, h("button", { class: "primary", type: "submit" }, "Upload"), bar);
  clear(main, h("h1", {}, "Datasets"), form, status,
    h("table", { id: "datasets" }, h("thead", {}, h("tr", {}, ["name", "id", "kind", "samples", "test samples", "sample shape", "classes", "size", "created"].map((t) => h("th", {}, t)))),
      h("tbody", {},
        builtins.map((b) => h("tr", { "data-builtin": b.name }, h("td", {}, b.name), h("td", {}, "built in"), h("td", {}, b.kind),
          h("td", { colspan: 6, class: "muted" }, b.description))),
        list.items.map((d) => h("tr", { "data-dataset": d.id },
          h("td", {}, h("a", { href: `#/datasets/${d.id}` }, d.name)), h("td", {}, d.id), h("td", {}, d.kind), h("td", { class: "num" }, d.num_samples),
          h("td", { class: "num" }, d.num_test_samples), h("td", {}, d.sample_shape.join("×")), h("td", { class: "num" }, d.num_classes),
          h("td", { class: "num" }, `${number(d.size_bytes / 2 ** 20, 3)} MiB`), h("td", {}, when(d.created_at)))))));
}

export async function datasetPage(datasetId, { main, signal }) {
  const d = await get(`/v1/datasets/${datasetId}`);
  const picture = h("div", { id: "preview" }, h("p", { class: "muted" }, "Drawing the preview…"));
  const most = Math.max(1, ...d.class_counts);
  const counts = d.class_names.map((name, i) => {
    const fill = h("span");
    fill.style.width = `${(100 * d.class_counts[i]) / most}%`;
    return h("div", { class: "prob", "data-class": name }, h("span", {}, name), h("span", { class: "pbar" }, fill), h("span", { class: "num" }, d.class_counts[i]));
  });
  clear(main, h("h1", {}, "Dataset ", d.name),
    h("div", { class: "card" }, h("dl", { class: "kv" },
      h("dt", {}, "id"), h("dd", {}, d.id), h("dt", {}, "format"), h("dd", {}, d.format), h("dt", {}, "kind"), h("dd", {}, d.kind),
      h("dt", {}, "samples"), h("dd", {}, `${d.num_samples} (+ ${d.num_test_samples} test)`), h("dt", {}, "sample shape"), h("dd", {}, d.sample_shape.join("×")),
      h("dt", {}, "sha256"), h("dd", {}, d.sha256))),
    h("h2", {}, "Samples"), picture,
    h("h2", {}, "Class counts"), h("div", { class: "card probs", id: "class-counts" }, counts.length ? counts : h("p", { class: "muted" }, "Unlabelled.")));
  try {
    const png = await blob("GET", `/v1/datasets/${datasetId}/preview`, { params: { n: 32 } });
    if (signal.aborted) return;
    if (png.type !== "image/png") { clear(picture, h("p", { class: "muted" }, "Not an image dataset: no picture to draw.")); return; }
    clear(picture, h("img", { class: "preview", alt: `samples of ${d.name}`, src: URL.createObjectURL(png) }));
  } catch (error) {
    clear(picture, errorBox(error));
  }
}

// Models: the list, and one model's page: metrics, preprocessing, source job, export buttons, and
// what it does live: predict from a dropped image or (one-channel image models) a digit drawn on
// a canvas, top-k as bars as you draw; a GAN generates a grid.

import { blob, get, post, request, saveBlob } from "../api.js";
import { drawingPad } from "../draw.js";
import { clear, errorBox, h, number, when } from "../dom.js";

const EXPORTS = { onnx: "onnx", torchscript: "torchscript.pt", safetensors: "safetensors" };

export async function modelsPage({ main }) {
  const list = await get("/v1/models", { limit: 200 });
  clear(main, h("h1", {}, "Models"),
    h("table", { id: "models" }, h("thead", {}, h("tr", {}, ["name", "id", "architecture", "classes", "val_accuracy", "parameters", "source job", "created"].map((t) => h("th", {}, t)))),
      h("tbody", {}, list.items.length ? list.items.map((m) => h("tr", { "data-model": m.id },
        h("td", {}, h("a", { href: `#/models/${m.id}` }, m.name)), h("td", {}, m.id), h("td", {}, m.architecture), h("td", { class: "num" }, m.class_names.length),
        h("td", { class: "num" }, number(m.metrics.val_accuracy)), h("td", { class: "num" }, number(m.parameter_count)),
        h("td", {}, m.job_id ? h("a", { href: `#/jobs/${m.job_id}` }, m.job_id) : ""), h("td", {}, when(m.created_at))))
        : h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No models yet: a job that succeeds makes one.")))));
}

function probabilityBars(answer) {
  const top = answer.top_k[0];
  return top.map(({ class: name, probability }) => {
    const fill = h("span");
    fill.style.width = `${(100 * probability).toFixed(1)}%`;
    return h("div", { class: "prob", "data-class": name }, h("strong", {}, name), h("span", { class: "pbar" }, fill), h("span", { class: "num" }, `${(100 * probability).toFixed(1)} %`));
  });
}

export function drawable(model) {
  const shape = model.sample_shape;
  const oneChannel = shape.length === 2 || (shape.length === 3 && shape[0] === 1);
  // An image network or a vector one (an MLP flattens the picture) over one-channel pictures.
  return model.preprocessing.layout !== "sequence" && oneChannel && shape.slice(-2).every((n) => n >= 8) && model.class_names.length > 0;
}

function classifierPanel(model, signal) {
  // data-busy: "1" while an answer is on its way (a test, or a screen reader, waits for "0").
  const out = h("div", { class: "probs card", id: "prediction", "data-busy": "0" }, h("p", { class: "muted" }, "Draw a digit or drop an image."));
  const show = (answer) => clear(out, h("div", { id: "predicted" }, "Prediction: ", h("strong", {}, answer.predictions[0])), probabilityBars(answer));
  const fail = (error) => clear(out, errorBox(error));

  const drop = h("div", { class: "drop", id: "drop" }, "Drop a PNG or JPEG here, or ", h("input", { type: "file", accept: "image/png,image/jpeg", id: "image-file",
    onchange: (event) => event.target.files[0] && predictFile(event.target.files[0]) }));
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault(); drop.classList.remove("over");
    if (event.dataTransfer.files[0]) predictFile(event.dataTransfer.files[0]);
  });
  async function predictFile(file) {
    const body = new FormData();
    body.append("file", file);
    out.dataset.busy = "1";
    try { show(await (await request("POST", `/v1/models/${model.id}/predict`, { body, params: { top_k: 5 } })).json()); } catch (error) { fail(error); }
    out.dataset.busy = "0";
  }

  let pad = null;
  if (drawable(model)) {
    const [height, width] = model.sample_shape.slice(-2);
    const maxValue = 1 / (model.preprocessing.scale || 1 / 255);  // raw units: 16 for digits, 255 for MNIST
    let busy = false, again = false, timer = null;
    const predictDrawing = async () => {
      if (busy) { again = true; return; }
      busy = true;
      try {
        const sample = pad.sample(height, width, maxValue);
        const answer = await post(`/v1/models/${model.id}/predict`, { inputs: [model.sample_shape.length === 3 ? [sample] : sample] }, { top_k: 5 });
        if (!signal.aborted) show(answer);
      } catch (error) { fail(error); }
      busy = false;
      if (again) { again = false; predictDrawing(); } else if (!timer) out.dataset.busy = "0";
    };
    pad = drawingPad((drawing) => {
      if (!pad || !pad.inked) return;
      clearTimeout(timer);
      out.dataset.busy = "1";
      timer = setTimeout(() => { timer = null; predictDrawing(); }, drawing ? 120 : 0);  // live while drawing, at most ~8 a second
    });
  }
  return h("div", { class: "predict" },
    pad ? h("div", {}, pad.canvas, h("div", {}, h("button", { type: "button", id: "clear-drawing", onclick: () => pad.clear() }, "Clear"),
      h("span", { class: "muted" }, ` drawn as ${model.sample_shape.join("×")} samples`))) : null,
    drop, out);
}

function generatorPanel(model) {
  const picture = h("div", { id: "generated" });
  const seed = h("input", { type: "number", value: 0, "aria-label": "seed" });
  const go = async () => {
    try {
      const png = await blob("POST", `/v1/models/${model.id}/generate`, { json: { n: 16, seed: Number(seed.value) }, params: { format: "png" } });
      clear(picture, h("img", { class: "preview", alt: "generated samples", src: URL.createObjectURL(png) }));
    } catch (error) { clear(picture, errorBox(error)); }
  };
  go();
  return h("div", {}, h("div", { class: "row" }, "seed", seed, h("button", { type: "button", onclick: go }, "Generate 16")), picture);
}

// The preprocessing in a line: its settings, and the per-feature mean and std only counted.
function preprocessingSummary(pre) {
  return Object.entries(pre).filter(([, v]) => v !== null && v !== false)
    .map(([k, v]) => (Array.isArray(v) && v.length > 4 ? `${k}: ${v.length} values` : `${k}: ${JSON.stringify(v)}`)).join(" · ");
}

export async function modelPage(modelId, { main, signal }) {
  const [model, architectures] = await Promise.all([get(`/v1/models/${modelId}`), get("/v1/architectures")]);
  const task = (architectures.find((a) => a.name === model.architecture) || {}).task;
  const status = h("div");
  const exports = Object.entries(EXPORTS).map(([format, suffix]) => h("button", { type: "button", "data-export": format, onclick: async () => {
    try { saveBlob(await blob("GET", `/v1/models/${modelId}/export`, { params: { format } }), `${modelId}.${suffix}`); } catch (error) { clear(status, errorBox(error)); }
  } }, format));
  clear(main, h("h1", {}, "Model ", h("span", { id: "model-name" }, model.name)), status,
    h("div", { class: "card" }, h("dl", { class: "kv" },
      h("dt", {}, "id"), h("dd", {}, model.id), h("dt", {}, "architecture"), h("dd", {}, model.architecture, " (", task || "?", ")"),
      h("dt", {}, "source job"), h("dd", {}, model.job_id ? h("a", { href: `#/jobs/${model.job_id}` }, model.job_id) : "deleted"),
      h("dt", {}, "metrics"), h("dd", { id: "model-metrics" }, Object.entries(model.metrics).map(([k, v]) => `${k} ${number(v)}`).join(", ")),
      h("dt", {}, "sample shape"), h("dd", {}, model.sample_shape.join("×")),
      h("dt", {}, "classes"), h("dd", {}, model.class_names.join(", ")),
      h("dt", {}, "parameters"), h("dd", {}, number(model.parameter_count)),
      h("dt", {}, "preprocessing"), h("dd", { id: "model-preprocessing" }, preprocessingSummary(model.preprocessing)))),
    h("div", { class: "row" }, "Export:", exports),
    task === "classify" ? [h("h2", {}, "Predict"), classifierPanel(model, signal)] : null,
    task === "generate" ? [h("h2", {}, "Generate"), generatorPanel(model)] : null);
}

// Submit a training job: a form built from GET /v1/architectures (each parameter's schema, its
// default and bounds), a dataset picker, optimizer and schedule; a 422 puts each message on the
// field its path names. The JSON tab holds the whole spec.

import { ApiError, get, post } from "../api.js";
import { clear, errorBox, h, number } from "../dom.js";

const OPTIMIZERS = ["", "sgd", "adam", "adamw", "rmsprop"];
const SCHEDULES = ["constant", "step", "cosine", "onecycle", "plateau"];

function field(path, labelText, input, hint) {
  input.id = `f-${path}`;
  input.dataset.path = path;
  return h("div", { class: "field", "data-field": path }, h("label", { for: input.id }, labelText), input,
    hint ? h("div", { class: "hint" }, hint) : null, h("div", { class: "error" }));
}

function numberInput(schema, value) {
  const bounds = schema || {};
  return h("input", { type: "number", step: bounds.type === "integer" ? 1 : "any", value: value ?? "",
    min: bounds.minimum ?? bounds.exclusiveMinimum, max: bounds.maximum ?? bounds.exclusiveMaximum });
}

function paramInput(schema) {
  const one = schema.anyOf ? schema.anyOf.find((s) => s.type !== "null") || schema : schema;
  if (one.enum) return h("select", {}, one.enum.map((v) => h("option", { value: v, selected: v === schema.default }, v)));
  if (one.type === "boolean") return h("input", { type: "checkbox", checked: schema.default === true });
  if (one.type === "integer" || one.type === "number") return numberInput({ ...one, type: one.type }, schema.default);
  if (one.type === "array") return h("input", { type: "text", value: (schema.default || []).join(", "), "data-kind": "list" });
  return h("input", { type: "text", value: schema.default ?? "" });
}

function readParam(input, schema) {
  const one = schema.anyOf ? schema.anyOf.find((s) => s.type !== "null") || schema : schema;
  if (input.type === "checkbox") return input.checked;
  const raw = input.value.trim();
  if (raw === "") return undefined;
  if (one.type === "integer" || one.type === "number") return Number(raw);
  if (one.type === "array") return raw.split(/[\s,]+/).filter(Boolean).map((v) => (Number.isNaN(Number(v)) ? v : Number(v)));
  return raw;
}

export async function submitPage({ main }) {
  const [architectures, builtins, datasets] = await Promise.all([get("/v1/architectures"), get("/v1/builtin-datasets"), get("/v1/datasets", { limit: 200 })]);
  const byName = Object.fromEntries(architectures.map((a) => [a.name, a]));
  const status = h("div", { id: "submit-status" });
  const paramsBox = h("div", { class: "grid2", id: "params" });
  const countNote = h("div", { class: "hint", id: "parameter-count" });
  const archSelect = h("select", { onchange: () => drawParams() }, architectures.map((a) => h("option", { value: a.name, selected: a.name === "mlp" }, a.name)));
  const datasetInput = h("input", { list: "dataset-choices", value: "builtin:digits" });
  const choices = h("datalist", { id: "dataset-choices" }, [...builtins.map((b) => b.example), ...datasets.items.map((d) => d.id)].map((v) => h("option", { value: v })));
  const inputs = {
    name: h("input", { type: "text", placeholder: "(a readable default)" }),
    validation: numberInput({ minimum: 0, maximum: 0.9 }, 0.1),
    epochs: numberInput({ type: "integer", minimum: 1 }, 10),
    batch: numberInput({ type: "integer", minimum: 1 }, 64),
    optimizer: h("select", {}, OPTIMIZERS.map((o) => h("option", { value: o }, o || "the family's default"))),
    lr: numberInput({ minimum: 0 }, ""),
    schedule: h("select", {}, SCHEDULES.map((o) => h("option", { value: o }, o))),
  };
  let paramInputs = {};

  function drawParams() {
    const arch = byName[archSelect.value];
    paramInputs = {};
    const fields = Object.entries(arch.params_schema.properties || {}).map(([name, schema]) => {
      paramInputs[name] = [paramInput(schema), schema];
      return field(`model.params.${name}`, name, paramInputs[name][0], schema.description);
    });
    clear(paramsBox, fields.length ? fields : h("p", { class: "muted" }, "No parameters."));
    countNote.textContent = `${arch.description} · ${number(arch.parameter_count)} parameters with its defaults (${arch.parameter_count_note})`;
  }

  function spec() {
    const params = {};
    for (const [name, [input, schema]] of Object.entries(paramInputs)) {
      const value = readParam(input, schema);
      if (value !== undefined) params[name] = value;
    }
    const training = { epochs: Number(inputs.epochs.value), batch_size: Number(inputs.batch.value), lr_schedule: { name: inputs.schedule.value } };
    if (inputs.optimizer.value) {
      training.optimizer = { name: inputs.optimizer.value };
      if (inputs.lr.value !== "") training.optimizer.lr = Number(inputs.lr.value);
    }
    const out = { model: { architecture: archSelect.value, params }, data: { dataset: datasetInput.value.trim(), validation_fraction: Number(inputs.validation.value) }, training };
    if (inputs.name.value.trim()) out.name = inputs.name.value.trim();
    return out;
  }

  function showErrors(error) {
    for (const el of main.querySelectorAll(".field.invalid")) { el.classList.remove("invalid"); el.querySelector(".error").textContent = ""; }
    const unplaced = [];
    for (const d of error.details || []) {
      const path = d.loc.slice(1).join(".");
      let target = null;
      for (let cut = d.loc.length; cut > 1 && !target; cut--) target = main.querySelector(`.field[data-field="${CSS.escape(d.loc.slice(1, cut).join("."))}"]`);
      if (target && !formPane.hidden) {
        target.classList.add("invalid");
        target.querySelector(".error").textContent = d.msg;
      } else {
        unplaced.push(`${path}: ${d.msg}`);
      }
    }
    clear(status, errorBox(error), unplaced.length ? h("ul", {}, unplaced.map((m) => h("li", {}, m))) : null);
  }

  async function send(body) {
    clear(status);
    try {
      const job = await post("/v1/jobs", body);
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      if (error instanceof ApiError) showErrors(error); else clear(status, errorBox(error));
    }
  }

  const formPane = h("form", { id: "submit-form", onsubmit: (event) => { event.preventDefault(); send(spec()); } },
    h("div", { class: "card" }, h("div", { class: "grid2" },
      field("name", "name", inputs.name), field("model.architecture", "architecture", archSelect),
      field("data.dataset", "dataset", datasetInput), field("data.validation_fraction", "validation fraction", inputs.validation)), countNote),
    h("div", { class: "card" }, h("h2", {}, "Parameters"), paramsBox),
    h("div", { class: "card" }, h("h2", {}, "Training"), h("div", { class: "grid2" },
      field("training.epochs", "epochs", inputs.epochs), field("training.batch_size", "batch size", inputs.batch),
      field("training.optimizer.name", "optimizer", inputs.optimizer), field("training.optimizer.lr", "learning rate", inputs.lr, "blank: the optimizer's default"),
      field("training.lr_schedule.name", "schedule", inputs.schedule))),
    h("button", { class: "primary", type: "submit", id: "submit-job" }, "Submit"));
  const json = h("textarea", { id: "spec-json", "aria-label": "job spec as JSON" });
  const jsonPane = h("form", { id: "submit-json", hidden: true, onsubmit: (event) => {
    event.preventDefault();
    let body;
    try { body = JSON.parse(json.value); } catch (error) { clear(status, errorBox(new Error(`Not JSON: ${error.message}`))); return; }
    send(body);
  } }, json, h("p"), h("button", { class: "primary", type: "submit" }, "Submit JSON"));
  const formTab = h("button", { type: "button", class: "active", onclick: () => show(false) }, "Form");
  const jsonTab = h("button", { type: "button", id: "json-tab", onclick: () => show(true) }, "JSON");
  function show(asJson) {
    if (asJson) json.value = JSON.stringify(spec(), null, 2);
    formPane.hidden = asJson; jsonPane.hidden = !asJson;
    formTab.classList.toggle("active", !asJson); jsonTab.classList.toggle("active", asJson);
  }
  clear(main, h("h1", {}, "Submit a job"), h("div", { class: "tabs" }, formTab, jsonTab), status, choices, formPane, jsonPane);
  drawParams();
}

// A canvas to draw a digit on with pointer events, read back as one raw sample the way the
// model's dataset holds it: the ink's bounding box scaled into the sample (MNIST-style 20x20 box
// centred in 28x28; the whole box for 8x8 digits), brightness in the dataset's units.

import { h } from "./dom.js";

export function drawingPad(onChange, size = 280) {
  const canvas = h("canvas", { class: "draw", width: size, height: size, id: "draw", "aria-label": "draw a digit" });
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  let last = null, inked = false;
  const reset = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, size, size); inked = false; };
  reset();
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [((event.clientX - box.left) / box.width) * size, ((event.clientY - box.top) / box.height) * size];
  };
  canvas.addEventListener("pointerdown", (event) => { canvas.setPointerCapture(event.pointerId); last = at(event); stroke(last, last); });
  canvas.addEventListener("pointermove", (event) => { if (last) { const p = at(event); stroke(last, p); last = p; } });
  const end = () => { if (last) { last = null; onChange(); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  function stroke(from, to) {
    ctx.strokeStyle = "#fff"; ctx.lineWidth = size / 12; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(...from); ctx.lineTo(...to); ctx.stroke();
    inked = true;
    onChange(true);
  }

  // The drawing as a [height][width] sample, values 0..maxValue.
  function sample(height, width, maxValue) {
    const pixels = ctx.getImageData(0, 0, size, size).data;
    let x0 = size, y0 = size, x1 = -1, y1 = -1;
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) {
      if (pixels[(y * size + x) * 4] > 20) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
    }
    const small = document.createElement("canvas");
    small.width = width; small.height = height;
    const sctx = small.getContext("2d", { willReadFrequently: true });
    sctx.fillStyle = "#000"; sctx.fillRect(0, 0, width, height);
    if (x1 >= 0) {
      const margin = height >= 20 ? 4 : 0;  // MNIST digits sit in a 20x20 box inside 28x28
      const bw = x1 - x0 + 1, bh = y1 - y0 + 1, fit = Math.min((width - 2 * margin) / bw, (height - 2 * margin) / bh);
      const dw = bw * fit, dh = bh * fit;
      sctx.imageSmoothingEnabled = true; sctx.imageSmoothingQuality = "high";
      sctx.drawImage(canvas, x0, y0, bw, bh, (width - dw) / 2, (height - dh) / 2, dw, dh);
    }
    const data = sctx.getImageData(0, 0, width, height).data;
    return Array.from({ length: height }, (_, y) => Array.from({ length: width }, (_, x) => (data[(y * width + x) * 4] / 255) * maxValue));
  }

  return { canvas, sample, clear: () => { reset(); onChange(); }, get inked() { return inked; } };
}

"""One batch-inference attempt: a model over a dataset split, batch by batch, with progress, the
lease and cancel through the job's context, and the predictions written as CSV and NPZ.

The forward pass is the API's own (``app.inference.forward_probs``), so a batch job and a predict
request give the same answer for the same sample. An attempt that is interrupted starts over:
inference is cheap next to training, and the result files appear atomically at the end.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np
from sqlalchemy import select

from app import inference
from app.artifacts import ArtifactStore
from app.db.tables import Job, TrainedModel
from app.services.inference_jobs import results_key
from worker.data import RawDataset, load_raw
from worker.job_context import JobContext


def run_inference(job: Job, ctx: JobContext, store: ArtifactStore, sessions) -> dict[str, Any]:
    spec = job.spec
    with sessions() as session:
        record = session.scalar(select(TrainedModel).where(TrainedModel.id == spec["model_id"], TrainedModel.tenant_id == job.tenant_id))
        if record is None:
            return {"state": "failed", "error": ("model_not_found", f"model {spec['model_id']} no longer exists")}
        session.expunge(record)
    loaded = inference.load(store, record)
    raw = load_raw(spec["dataset_id"], store)
    x, y, lengths = split_of(raw, spec["split"])
    n, batch_size = len(x), spec["batch_size"]
    total = max(1, math.ceil(n / batch_size))
    probs = np.empty((n, len(loaded.class_names)), dtype=np.float32)
    ctx.set_progress(epoch=0, step=0, total_steps=total)
    for step in range(total):
        reason = ctx.stop_reason()
        if reason is not None:
            return {"cancelled": {"state": "cancelled"}, "shutdown": {"state": "queued"}}.get(reason, {})
        rows = slice(step * batch_size, (step + 1) * batch_size)
        batch = np.asarray(x[rows], dtype=np.float32)
        inference.check_tokens(loaded, batch)
        probs[rows] = inference.forward_probs(loaded, batch, None if lengths is None else np.asarray(lengths[rows]))
        ctx.set_progress(epoch=0, step=step + 1, total_steps=total)
    predictions = probs.argmax(1)
    labelled = y is not None and len(y) == n and len(raw.info.class_names) > 0
    labels = np.asarray(raw.info.class_names)[np.asarray(y)] if labelled else None
    predicted_names = np.asarray(loaded.class_names)[predictions]
    metrics = {"samples": float(n)}
    if labels is not None:
        metrics["accuracy"] = float(np.mean(predicted_names == labels))
    write_results(store, job.id, loaded.class_names, predictions, probs, labels)
    ctx.report(metrics, step=total, epoch=0)
    return {"state": "succeeded"}


def split_of(raw: RawDataset, split: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    if split == "train":
        return raw.x, raw.y, raw.lengths
    if split == "test":
        return raw.x_test, raw.y_test, raw.lengths_test
    x = np.concatenate([raw.x, raw.x_test]) if raw.x_test is not None else raw.x
    y = np.concatenate([raw.y, raw.y_test]) if raw.x_test is not None and raw.y is not None and raw.y_test is not None else raw.y
    lengths = raw.lengths if raw.lengths is None or raw.lengths_test is None else np.concatenate([raw.lengths, raw.lengths_test])
    return x, y, lengths


def write_results(store: ArtifactStore, job_id: str, class_names: list[str], predictions: np.ndarray, probs: np.ndarray,
                  labels: np.ndarray | None) -> None:
    """NPZ of plain arrays (no objects, so ``np.load(allow_pickle=False)`` reads it) and a CSV."""
    arrays = {"predictions": predictions.astype(np.int64), "probabilities": probs, "class_names": np.asarray(class_names, dtype=str)}
    if labels is not None:
        arrays["labels"] = labels.astype(str)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    store.write_bytes(results_key(job_id, "npz"), buffer.getvalue())

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["index", "label", "prediction", *(f"p_{name}" for name in class_names)])
    for i, (predicted, row) in enumerate(zip(predictions.tolist(), probs)):
        writer.writerow([i, "" if labels is None else labels[i], class_names[predicted], *(f"{p:.6g}" for p in row.tolist())])
    store.write_bytes(results_key(job_id, "csv"), text.getvalue().encode())

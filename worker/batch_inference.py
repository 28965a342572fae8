"""One batch-inference attempt: a model over a dataset split, batch by batch, with progress, the
lease and cancel through the job's context, and the predictions written as CSV and NPZ.

The forward pass is serving's own (``app.serving.forward.probabilities``), so a batch job and a
predict request give the same answer for the same sample. An attempt that is interrupted starts
over: inference is cheap next to training, and the result files appear atomically at the end.
"""

from __future__ import annotations

import csv
import io
import math

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.core import trained_models
from app.core.artifacts import layout
from app.core.artifacts.store import ArtifactStore
from app.core.datasets.arrays import load_raw
from app.core.db.tables import Job
from app.core.jobs.outcome import Outcome
from app.serving import decode, forward
from app.serving.loading import load, servable_model
from worker.job_context import JobContext

# What a stop request means for a batch job: cancelled, handed back (it starts over), or nothing (lease lost).
STOPPED = {"cancelled": Outcome("cancelled"), "shutdown": Outcome("queued")}


def run_inference(job: Job, ctx: JobContext, store: ArtifactStore, sessions: sessionmaker[Session]) -> Outcome | None:
    spec = job.spec
    with sessions() as session:
        record = trained_models.find(session=session, tenant_id=job.tenant_id, model_id=spec["model_id"])
        if record is None:
            return Outcome.failed("model_not_found", f"model {spec['model_id']} no longer exists")
        servable = servable_model(record)
    loaded = load(store, servable)
    raw = load_raw(spec["dataset_id"], store)
    x, y, lengths = raw.split(spec["split"])
    n, batch_size = len(x), spec["batch_size"]
    total = max(1, math.ceil(n / batch_size))
    probs = np.empty((n, len(loaded.class_names)), dtype=np.float32)
    ctx.say(f"predicting the {spec['split']} split of {spec['dataset_id']} ({n} samples) with model {servable.id}, "
            f"{total} batches of up to {batch_size}")
    ctx.set_progress(epoch=0, step=0, total_steps=total)
    for step in range(total):
        reason = ctx.stop_reason()
        if reason is not None:
            return STOPPED.get(reason)
        rows = slice(step * batch_size, (step + 1) * batch_size)
        batch = np.asarray(x[rows], dtype=np.float32)
        decode.check_tokens(servable, batch)
        probs[rows] = forward.probabilities(loaded, batch, None if lengths is None else np.asarray(lengths[rows]))
        ctx.set_progress(epoch=0, step=step + 1, total_steps=total)
    predictions = probs.argmax(1)
    labelled = y is not None and len(y) == n and len(raw.info.class_names) > 0
    labels = np.asarray(raw.info.class_names)[np.asarray(y)] if labelled else None
    predicted_names = np.asarray(loaded.class_names)[predictions]
    metrics = {"samples": float(n)}
    if labels is not None:
        metrics["accuracy"] = float(np.mean(predicted_names == labels))
    write_results(store, job.id, loaded.class_names, predictions, probs, labels)
    accuracy = f"; accuracy {metrics['accuracy']:.4f} against the dataset's labels" if "accuracy" in metrics else ""
    ctx.say(f"wrote predictions.csv and predictions.npz for {n} samples{accuracy}")
    ctx.report(metrics, step=total, epoch=0)
    return Outcome("succeeded")


def write_results(store: ArtifactStore, job_id: str, class_names: list[str], predictions: np.ndarray, probs: np.ndarray,
                  labels: np.ndarray | None) -> None:
    """NPZ of plain arrays (no objects, so ``np.load(allow_pickle=False)`` reads it) and a CSV."""
    # Names in predictions, as in labels, the CSV and /predict (so predictions == labels compares); indices beside them.
    names = np.asarray(class_names, dtype=str)
    arrays = {"predictions": names[predictions], "prediction_indices": predictions.astype(np.int64), "probabilities": probs, "class_names": names}
    if labels is not None:
        arrays["labels"] = labels.astype(str)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    store.write_bytes(layout.inference_results(job_id, "npz"), buffer.getvalue())

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["index", "label", "prediction", *(f"p_{name}" for name in class_names)])
    for i, (predicted, row) in enumerate(zip(predictions.tolist(), probs)):
        writer.writerow([i, "" if labels is None else labels[i], class_names[predicted], *(f"{p:.6g}" for p in row.tolist())])
    store.write_bytes(layout.inference_results(job_id, "csv"), text.getvalue().encode())

"""Uploaded datasets: ingest (validate, convert once, keep nothing on failure), tenant-scoped
reads, deletion unless a job still needs it, previews, and what a job may ask of a dataset."""

from __future__ import annotations

import io
import shutil
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import ingest
from app.artifacts import ArtifactStore
from app.datasets_catalog import BUILTIN_NAMES, DatasetInfo, builtin_dataset
from app.db.tables import Dataset, Job
from app.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, detail
from app.ids import new_id
from app.services.paging import Page, newest_first, page_of

ACTIVE_STATES = ("queued", "running")


def dataset_prefix(dataset_id: str) -> str:
    return f"datasets/{dataset_id}"


def create(
    *, session: Session, store: ArtifactStore, tenant_id: str, name: str, fmt: str,
    uploads: list[ingest.Upload], options: dict[str, Any], limits: ingest.IngestLimits,
) -> Dataset:
    """Converts into a staging folder and moves it into place only when every check passed.
    The caller commits; if that fails it calls ``discard`` so no file outlives its row."""
    dataset_id = new_id("ds")
    staging = store.path(f"datasets/.staging-{dataset_id}")
    staging.mkdir(parents=True)
    try:
        description = ingest.convert(fmt, uploads, options, staging, limits)
        final = store.path(dataset_prefix(dataset_id))
        staging.rename(final)
    except ingest.IngestError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        error = PayloadTooLarge if exc.status == 413 else InvalidInput
        raise error(str(exc), [detail(["body", "file"] + ([exc.file] if exc.file else []), str(exc))]) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    known = {"format", "kind", "task", "num_samples", "num_test_samples", "sample_shape", "dtype", "num_classes",
             "class_names", "class_counts", "stats", "value_max", "size_bytes", "sha256"}
    dataset = Dataset(
        id=dataset_id, tenant_id=tenant_id, name=name, artifact_path=dataset_prefix(dataset_id),
        details={k: v for k, v in description.items() if k not in known and k != "files"},
        **{k: description[k] for k in known},
    )
    session.add(dataset)
    session.flush()
    return dataset


def discard(store: ArtifactStore, dataset_id: str) -> None:
    store.delete(dataset_prefix(dataset_id))


def get(*, session: Session, tenant_id: str, dataset_id: str) -> Dataset:
    dataset = session.scalar(select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id))
    if dataset is None:
        raise NotFound(f"dataset {dataset_id!r} not found")
    return dataset


def list_datasets(*, session: Session, tenant_id: str, limit: int, cursor: str | None) -> Page:
    stmt = select(Dataset).where(Dataset.tenant_id == tenant_id)
    return page_of(list(session.scalars(newest_first(stmt, Dataset, limit=limit, cursor=cursor))), limit)


def delete(*, session: Session, store: ArtifactStore, tenant_id: str, dataset_id: str) -> None:
    dataset = get(session=session, tenant_id=tenant_id, dataset_id=dataset_id)
    users = session.scalars(
        select(Job.id).where(Job.tenant_id == tenant_id, Job.dataset_ref == dataset_id, Job.state.in_(ACTIVE_STATES)).limit(5)
    ).all()
    if users:
        raise Conflict(f"dataset {dataset_id!r} is used by queued or running jobs: {', '.join(users)}")
    session.delete(dataset)
    session.flush()
    discard(store, dataset.id)


def info(dataset: Dataset) -> DatasetInfo:
    return DatasetInfo(
        ref=dataset.id, description=dataset.name, kind=dataset.kind, sample_shape=tuple(dataset.sample_shape),
        value_max=dataset.value_max, class_names=tuple(dataset.class_names), num_samples=dataset.num_samples,
        task=dataset.task, class_counts=tuple(dataset.class_counts), has_test_split=dataset.num_test_samples > 0,
        vocab_size=dataset.details.get("vocab_size"),
    )


def resolve(*, session: Session, tenant_id: str, ref: str) -> DatasetInfo:
    """A job's ``data.dataset``: a built-in name or one of the tenant's dataset ids; else a 422."""
    builtin = builtin_dataset(ref)
    if builtin is not None:
        return builtin
    dataset = session.scalar(select(Dataset).where(Dataset.id == ref, Dataset.tenant_id == tenant_id))
    if dataset is None:
        raise InvalidInput(
            f"unknown dataset {ref!r}: not one of your dataset ids, nor a built-in ({', '.join(BUILTIN_NAMES)})",
            [detail(["body", "data", "dataset"], "not a known dataset")],
        )
    return info(dataset)


def preview(*, store: ArtifactStore, dataset: Dataset, n: int) -> tuple[bytes, str] | dict[str, Any]:
    """A PNG grid of the first ``n`` samples for image sets; their values and labels otherwise."""
    folder = store.path(dataset.artifact_path)
    x = np.load(folder / "train_x.npy", mmap_mode="r")[:n]
    y_path = folder / "train_y.npy"
    y = np.load(y_path, mmap_mode="r")[:n] if y_path.exists() else None
    labels = [dataset.class_names[int(v)] for v in y] if y is not None and dataset.class_names else None
    if dataset.kind != "image":
        return {"samples": np.asarray(x).tolist(), "labels": labels, "columns": dataset.details.get("feature_names")}
    return png_grid(np.asarray(x, dtype=np.float32), dataset.value_max), "image/png"


def png_grid(x: np.ndarray, value_max: float) -> bytes:
    """Samples (N, H, W) or (N, C, H, W) in raw units as one PNG grid, scaled up for viewing."""
    from PIL import Image

    if x.ndim == 3:
        x = x[:, None]
    n, c, h, w = x.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    pad = 2
    grid = np.zeros((c, rows * (h + pad) + pad, cols * (w + pad) + pad), dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, cols)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = x[i]
    pixels = np.clip(grid / (value_max or 1.0) * 255, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels[0] if c == 1 else pixels[:3].transpose(1, 2, 0))
    scale = max(1, 256 // max(image.size))
    image = image.resize((image.size[0] * scale, image.size[1] * scale), Image.NEAREST)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()

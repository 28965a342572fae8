"""Uploaded datasets: ingest (validate, convert once, keep nothing on failure), tenant-scoped
reads, deletion unless a job still needs it, previews, and what a job may ask of a dataset."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core import images, quotas, scoped
from app.core.artifacts import layout
from app.core.artifacts.store import ArtifactStore
from app.core.datasets import ingest
from app.core.datasets.arrays import load_raw
from app.core.datasets.catalog import BUILTIN_NAMES, DatasetInfo, builtin_dataset
from app.core.db.tables import Dataset, Job
from app.core.errors import Conflict, InvalidInput, PayloadTooLarge, StorageQuotaExceeded, detail, over_limit
from app.core.ids import new_id
from app.core.paging import Page, newest_page

ACTIVE_STATES = ("queued", "running")


def create(
    *, session: Session, store: ArtifactStore, tenant_id: str, name: str, fmt: str,
    uploads: list[ingest.Upload], options: dict[str, Any], limits: ingest.IngestLimits,
) -> Dataset:
    """Converts into a new folder of the store, published only when every check passed.
    The caller commits; if that fails it calls ``discard`` so no file outlives its row.

    ``session`` must not have begun before this (on SQLite its first statement takes the write
    lock, which must not be held through a conversion): the storage quota is checked once the
    size is known; ``check_room`` is the early check, on a read-only session."""
    if fmt not in ingest.FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; one of: {', '.join(ingest.FORMATS)}", [detail(["body", "format"], f"one of: {', '.join(ingest.FORMATS)}")])
    dataset_id = new_id("ds")
    try:
        with store.publish_folder(layout.dataset_prefix(dataset_id)) as folder:
            description = ingest.convert(fmt, uploads, options, folder, limits)
    except ingest.IngestError as exc:
        error = PayloadTooLarge if exc.status == 413 else InvalidInput
        raise error(str(exc), [detail(["body", "file"] + ([exc.file] if exc.file else []), str(exc))]) from None
    known = {"format", "kind", "task", "num_samples", "num_test_samples", "sample_shape", "dtype", "num_classes",
             "class_names", "class_counts", "stats", "value_max", "size_bytes", "sha256"}
    dataset = Dataset(
        id=dataset_id, tenant_id=tenant_id, name=name, artifact_path=layout.dataset_prefix(dataset_id),
        details={k: v for k, v in description.items() if k not in known and k != "files"},
        **{k: description[k] for k in known},
    )
    try:
        quotas.check_storage(session=session, tenant_id=tenant_id, adding=dataset.size_bytes)
    except StorageQuotaExceeded:
        discard(store, dataset_id)
        raise
    session.add(dataset)
    session.flush()
    return dataset


def check_room(*, session: Session, tenant_id: str) -> None:
    """Before an upload is converted: refuse at once if the tenant's storage is used up."""
    quotas.check_storage(session=session, tenant_id=tenant_id, lock=False)


def discard(store: ArtifactStore, dataset_id: str) -> None:
    store.delete(layout.dataset_prefix(dataset_id))


def get(*, session: Session, tenant_id: str, dataset_id: str) -> Dataset:
    return scoped.get(session, Dataset, tenant_id, dataset_id, "dataset")


def list_datasets(*, session: Session, tenant_id: str, limit: int, cursor: str | None) -> Page:
    return newest_page(session, scoped.owned(Dataset, tenant_id), Dataset, limit=limit, cursor=cursor)


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
        num_test_samples=dataset.num_test_samples,
        vocab_size=dataset.details.get("vocab_size"),
    )


def resolve(*, session: Session, tenant_id: str, ref: str) -> DatasetInfo:
    """A job's ``data.dataset``: a built-in name or one of the tenant's dataset ids; else a 422."""
    builtin = builtin_dataset(ref)
    if builtin is not None:
        return builtin
    dataset = scoped.find(session, Dataset, tenant_id, ref)
    if dataset is None:
        raise InvalidInput(
            f"unknown dataset {ref!r}: not one of your dataset ids, nor a built-in ({', '.join(BUILTIN_NAMES)})",
            [detail(["body", "data", "dataset"], "not a known dataset")],
        )
    return info(dataset)


def preview(*, store: ArtifactStore, dataset: Dataset, n: int, max_elements: int) -> bytes | dict[str, Any]:
    """A PNG grid of the first ``n`` samples for image sets; their values and labels otherwise.
    Bounded before anything is read: ``n`` samples of the dataset's shape, at most ``max_elements`` values."""
    values = min(n, dataset.num_samples) * math.prod(dataset.sample_shape)
    if values > max_elements:
        raise over_limit(f"the values of {n} samples of shape {dataset.sample_shape}", values, max_elements,
                         "KILN_MAX_RESPONSE_ELEMENTS", ["query", "n"])
    raw = load_raw(dataset.id, store)
    x = np.asarray(raw.x[:n])
    labels = [dataset.class_names[int(v)] for v in raw.y[:n]] if raw.y is not None and dataset.class_names else None
    if dataset.kind != "image":
        return {"samples": x.tolist(), "labels": labels, "columns": dataset.details.get("feature_names")}
    return images.png_grid(x.astype(np.float32), dataset.value_max)

"""Batch-inference jobs: a model over a whole dataset split, on a worker, with the same lease,
progress, cancel and reconciler machinery as training (a job row of kind "inference").

Checked at submission, so a job that is queued can run: the model is the tenant's and a
classifier, the dataset is the tenant's (or built in), its samples have the model's sample shape,
and the split exists. Its results are files, downloadable once it has succeeded.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

import models
from app.core import quotas, trained_models
from app.core.artifacts import layout
from app.core.datasets import service as dataset_service
from app.core.db.clock import db_now
from app.core.db.tables import Job
from app.core.db.types import utcnow
from app.core.errors import Conflict, InvalidInput, detail
from app.core.ids import new_id
from app.core.jobs import events
from app.core.jobs import service as job_service

KIND = "inference"


def create(
    *, session: Session, tenant_id: str, model_id: str, dataset_id: str, split: str | None, batch_size: int, max_attempts: int,
) -> Job:
    quotas.check_can_queue(session=session, tenant_id=tenant_id)
    model = trained_models.find(session=session, tenant_id=tenant_id, model_id=model_id)
    if model is None:
        raise InvalidInput(f"unknown model {model_id!r}", [detail(["body", "model_id"], "not one of your models")])
    if models.get(model.architecture).task != "classify":
        raise InvalidInput(f"model {model.id} is a {model.architecture}, not a classifier; batch inference predicts classes",
                           [detail(["body", "model_id"], "not a classifier")])
    try:
        info = dataset_service.resolve(session=session, tenant_id=tenant_id, ref=dataset_id)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, [detail(["body", "dataset_id"], "not a known dataset")]) from None
    if list(info.sample_shape) != list(model.sample_shape):
        raise InvalidInput(
            f"dataset {dataset_id!r} has samples of shape {list(info.sample_shape)}; model {model.id} takes {list(model.sample_shape)}",
            [detail(["body", "dataset_id"], "sample shape differs from the model's")],
        )
    split = split or ("test" if info.has_test_split else "train")
    if split == "test" and not info.has_test_split:
        raise InvalidInput(f"dataset {dataset_id!r} has no test split", [detail(["body", "split"], "no test split")])
    job = Job(
        id=new_id("inf"), tenant_id=tenant_id, kind=KIND, name=f"inference {model.id} on {dataset_id}"[:200],
        state="queued", spec={"model_id": model.id, "dataset_id": dataset_id, "split": split, "batch_size": batch_size},
        dataset_ref=dataset_id, max_attempts=max_attempts, latest_metrics={}, created_at=utcnow(), enqueued_at=db_now(),
    )
    session.add(job)
    session.flush()
    events.state_changed(session, job_id=job.id, tenant_id=tenant_id, state="queued", attempt=0)
    return job


def results_key(*, session: Session, tenant_id: str, job_id: str, fmt: str) -> str:
    """The predictions file of a job that has succeeded; a 409 before that."""
    job = job_service.get(session=session, tenant_id=tenant_id, job_id=job_id, kind=KIND)
    if job.state != "succeeded":
        raise Conflict(f"inference job {job_id!r} is {job.state}; results exist once it has succeeded")
    return layout.inference_results(job_id, fmt)

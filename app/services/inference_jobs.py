"""Batch-inference jobs: a model over a whole dataset split, on a worker, with the same lease,
progress, cancel and reconciler machinery as training (a job row of kind "inference").

Checked at submission, so a job that is queued can run: the model is the tenant's and a
classifier, the dataset is the tenant's (or built in), its samples have the model's sample shape,
and the split exists.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

import models
from app.artifacts import job_prefix
from app.db.tables import Job, TrainedModel
from app.db.types import utcnow
from app.errors import InvalidInput, detail
from app.ids import new_id
from app.schemas import InferenceJobIn
from app.services import datasets as dataset_service

RESULT_FORMATS = ("csv", "npz")


def create(*, session: Session, tenant_id: str, request: InferenceJobIn, max_attempts: int) -> Job:
    model = session.scalar(select(TrainedModel).where(TrainedModel.id == request.model_id, TrainedModel.tenant_id == tenant_id))
    if model is None:
        raise InvalidInput(f"unknown model {request.model_id!r}", [detail(["body", "model_id"], "not one of your models")])
    if models.get(model.architecture).task != "classify":
        raise InvalidInput(f"model {model.id} is a {model.architecture}, not a classifier; batch inference predicts classes",
                           [detail(["body", "model_id"], "not a classifier")])
    try:
        info = dataset_service.resolve(session=session, tenant_id=tenant_id, ref=request.dataset_id)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, [detail(["body", "dataset_id"], "not a known dataset")]) from None
    if list(info.sample_shape) != list(model.sample_shape):
        raise InvalidInput(
            f"dataset {request.dataset_id!r} has samples of shape {list(info.sample_shape)}; model {model.id} takes {list(model.sample_shape)}",
            [detail(["body", "dataset_id"], "sample shape differs from the model's")],
        )
    split = request.split or ("test" if info.has_test_split else "train")
    if split == "test" and not info.has_test_split:
        raise InvalidInput(f"dataset {request.dataset_id!r} has no test split", [detail(["body", "split"], "no test split")])
    job = Job(
        id=new_id("inf"), tenant_id=tenant_id, kind="inference", name=f"inference {model.id} on {request.dataset_id}",
        state="queued", spec={"model_id": model.id, "dataset_id": request.dataset_id, "split": split, "batch_size": request.batch_size},
        dataset_ref=request.dataset_id, max_attempts=max_attempts, latest_metrics={}, created_at=utcnow(), enqueued_at=utcnow(),
    )
    session.add(job)
    session.flush()
    return job


def results_key(job_id: str, fmt: str) -> str:
    return f"{job_prefix(job_id)}/predictions.{fmt}"

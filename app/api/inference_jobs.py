"""Batch-inference jobs over REST: submit, list, read, cancel, download results. Thin: parse, call a service, shape the answer."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from app.api.common import ErrorInfo, JobState, PageOut, error_of, finite, fraction_done
from app.api.deps import BrokerDep, PageDep, ReadCaller, ReadSessionDep, SessionDep, SettingsDep, StoreDep, SubmitCaller, TrainCaller
from app.api.downloads import artifact_response
from app.api.errors import errors
from app.api.idempotency import IdempotencyKeyHeader, Once
from app.core import idempotency
from app.core.db.tables import Job
from app.core.jobs import batch_inference
from app.core.jobs import service as job_service
from app.core.json_input import Integer


class InferenceJobIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, protected_namespaces=())
    model_id: str = Field(max_length=40, description="one of your models (a classifier)")
    dataset_id: str = Field(max_length=200, description="one of your dataset ids, or a builtin:... name")
    split: Literal["test", "train", "all"] | None = Field(None, description="which samples; default: test if the dataset has one, else train")
    batch_size: Integer = Field(256, ge=1, le=8192)


class InferenceProgress(BaseModel):
    step: int = Field(description="batches done")
    total_steps: int
    fraction: float


class InferenceJobOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    id: str
    state: JobState
    attempt: int
    model_id: str
    dataset_id: str
    split: str
    progress: InferenceProgress
    metrics: dict[str, float] = Field(description="samples, and accuracy where the split has labels")
    error: ErrorInfo | None
    results: dict[str, str] | None = Field(description="download paths by format, once succeeded")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> "InferenceJobOut":
        results = None
        if job.state == "succeeded":
            results = {fmt: f"/v1/inference-jobs/{job.id}/results?format={fmt}" for fmt in ("csv", "npz")}
        return cls(
            id=job.id, state=job.state, attempt=job.attempt, model_id=job.spec["model_id"], dataset_id=job.spec["dataset_id"],
            split=job.spec["split"], progress=InferenceProgress(step=job.step, total_steps=job.total_steps, fraction=fraction_done(job)),
            metrics=finite(job.latest_metrics), error=error_of(job),
            results=results, created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
        )


class InferenceJobList(PageOut):
    items: list[InferenceJobOut]
    next_cursor: str | None


router = APIRouter(prefix="/v1/inference-jobs", tags=["inference jobs"])
MEDIA_TYPES = {"csv": "text/csv", "npz": "application/octet-stream"}


@router.post("", status_code=201, response_model=InferenceJobOut, operation_id="submitInferenceJob", responses=errors(413, 429))
def submit(body: InferenceJobIn, caller: SubmitCaller, session: SessionDep, settings: SettingsDep, broker: BrokerDep,
           request: Request, response: Response, idempotency_key: IdempotencyKeyHeader = None):
    once = Once(session=session, settings=settings, tenant_id=caller.tenant_id, route="submitInferenceJob", key=idempotency_key)
    asked = idempotency.fingerprint(body.model_dump(mode="json"))
    if replay := once.earlier(asked):
        return replay
    job = batch_inference.create(session=session, tenant_id=caller.tenant_id, max_attempts=settings.max_attempts, **body.model_dump())
    out, location = InferenceJobOut.of(job), str(request.url_for("get_inference_job", job_id=job.id))
    if replay := once.commit(asked, idempotency.Answer(201, out.model_dump(mode="json"), location)):
        return replay
    broker.wake(job.id, job.device)  # the same queues and task for every job kind
    response.headers["Location"] = location
    return out


@router.get("", response_model=InferenceJobList, operation_id="listInferenceJobs", responses=errors())
def list_inference_jobs(caller: ReadCaller, session: ReadSessionDep, page: PageDep, state: JobState | None = None):
    return InferenceJobList.of(job_service.list_jobs(session=session, tenant_id=caller.tenant_id, state=state, limit=page.limit, cursor=page.cursor,
                                  kind=batch_inference.KIND))


@router.get("/{job_id}", response_model=InferenceJobOut, operation_id="getInferenceJob", responses=errors(404))
def get_inference_job(job_id: str, caller: ReadCaller, session: ReadSessionDep):
    return InferenceJobOut.of(job_service.get(session=session, tenant_id=caller.tenant_id, job_id=job_id, kind=batch_inference.KIND))


@router.post("/{job_id}/cancel", response_model=InferenceJobOut, operation_id="cancelInferenceJob", responses=errors(404, 409))
def cancel(job_id: str, caller: TrainCaller, session: SessionDep, store: StoreDep):
    job = job_service.request_cancel(session=session, store=store, tenant_id=caller.tenant_id, job_id=job_id, kind=batch_inference.KIND)
    session.commit()
    return InferenceJobOut.of(job)


@router.get("/{job_id}/logs", response_class=PlainTextResponse, operation_id="getInferenceJobLogs", responses=errors(404))
def get_logs(job_id: str, caller: ReadCaller, session: ReadSessionDep, store: StoreDep):
    """What the batch job did: each attempt's start, the model and samples, the results, the outcome."""
    return PlainTextResponse(job_service.read_log(session=session, store=store, tenant_id=caller.tenant_id, job_id=job_id,
                                                  kind=batch_inference.KIND))


@router.delete("/{job_id}", status_code=204, operation_id="deleteInferenceJob", responses=errors(404, 409))
def delete_inference_job(job_id: str, caller: TrainCaller, session: SessionDep, store: StoreDep):
    """A finished batch job and its results."""
    job_service.delete(session=session, store=store, tenant_id=caller.tenant_id, job_id=job_id, kind=batch_inference.KIND)
    session.commit()
    return Response(status_code=204)


@router.get("/{job_id}/results", response_class=FileResponse, operation_id="getInferenceJobResults",
            responses={**errors(404, 409), 200: {"content": {"text/csv": {}, "application/octet-stream": {}}}})
def results(job_id: str, caller: ReadCaller, session: ReadSessionDep, store: StoreDep, format: Literal["csv", "npz"] = "csv"):
    """The predictions: CSV (index, label, prediction, one probability column per class) or NPZ
    (predictions, probabilities, class_names, labels; loads with ``allow_pickle=False``)."""
    key = batch_inference.results_key(session=session, tenant_id=caller.tenant_id, job_id=job_id, fmt=format)
    return artifact_response(store, key, MEDIA_TYPES[format], f"{job_id}-predictions.{format}")

"""Batch-inference jobs over REST. Thin: parse, call a service, shape the answer."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from app.artifacts import ArtifactStore
from app.deps import CallerDep, SessionDep, SettingsDep
from app.errors import Conflict
from app.queue import wake_worker
from app.schemas import InferenceJobIn, InferenceJobList, InferenceJobOut, JobState
from app.services import inference_jobs
from app.services import jobs as job_service

router = APIRouter(prefix="/v1/inference-jobs", tags=["inference jobs"])
MEDIA_TYPES = {"csv": "text/csv", "npz": "application/octet-stream"}


@router.post("", status_code=201, response_model=InferenceJobOut)
def submit(body: InferenceJobIn, caller: CallerDep, session: SessionDep, settings: SettingsDep, request: Request, response: Response):
    job = inference_jobs.create(session=session, tenant_id=caller.tenant_id, request=body, max_attempts=settings.max_attempts)
    session.commit()
    wake_worker(settings, job.id)  # one queue and one task for every job kind
    response.headers["Location"] = str(request.url_for("get_inference_job", job_id=job.id))
    return InferenceJobOut.of(job)


@router.get("", response_model=InferenceJobList)
def list_inference_jobs(
    caller: CallerDep, session: SessionDep,
    state: JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
):
    page = job_service.list_jobs(session=session, tenant_id=caller.tenant_id, state=state, limit=limit, cursor=cursor, kind="inference")
    return InferenceJobList(items=[InferenceJobOut.of(j) for j in page.items], next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=InferenceJobOut)
def get_inference_job(job_id: str, caller: CallerDep, session: SessionDep):
    return InferenceJobOut.of(job_service.get(session=session, tenant_id=caller.tenant_id, job_id=job_id, kind="inference"))


@router.post("/{job_id}/cancel", response_model=InferenceJobOut)
def cancel(job_id: str, caller: CallerDep, session: SessionDep):
    job = job_service.request_cancel(session=session, tenant_id=caller.tenant_id, job_id=job_id, kind="inference")
    session.commit()
    return InferenceJobOut.of(job)


@router.get("/{job_id}/results", response_class=FileResponse, responses={200: {"content": {"text/csv": {}, "application/octet-stream": {}}}})
def results(job_id: str, caller: CallerDep, session: SessionDep, settings: SettingsDep, format: Literal["csv", "npz"] = "csv"):
    """The predictions: CSV (index, label, prediction, one probability column per class) or NPZ
    (predictions, probabilities, class_names, labels; loads with ``allow_pickle=False``)."""
    job = job_service.get(session=session, tenant_id=caller.tenant_id, job_id=job_id, kind="inference")
    if job.state != "succeeded":
        raise Conflict(f"inference job {job_id!r} is {job.state}; results exist once it has succeeded")
    path = ArtifactStore(settings.artifacts_dir).path(inference_jobs.results_key(job_id, format))
    return FileResponse(path, media_type=MEDIA_TYPES[format], filename=f"{job_id}-predictions.{format}")

"""Datasets over REST: multipart upload (streamed to disk), reads, delete, preview."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.api.common import PageOut
from app.api.deps import PageDep, ReadCaller, ReadSessionDep, SessionDep, SettingsDep, StoreDep, TrainCaller, UploadCaller
from app.api.errors import errors
from app.api.idempotency import IdempotencyKeyHeader, Once
from app.core import idempotency
from app.core.datasets import ingest
from app.core.datasets import service as dataset_service
from app.core.db.tables import Dataset
from app.core.errors import InvalidInput, detail


class DatasetOut(BaseModel):
    id: str
    name: str
    format: str
    kind: str = Field(description="image | tabular | sequence")
    task: str = Field(description="classification | unlabelled")
    num_samples: int
    num_test_samples: int
    sample_shape: list[int]
    dtype: str
    num_classes: int
    class_names: list[str]
    class_counts: list[int]
    stats: dict[str, list[float]] = Field(description="per-channel (images) or per-feature mean and std, in raw units")
    details: dict[str, Any]
    size_bytes: int
    sha256: str = Field(description="of the uploaded file; for several files, of their sha256 digests in name order")
    created_at: datetime

    @classmethod
    def of(cls, d: Dataset) -> "DatasetOut":
        return cls(
            id=d.id, name=d.name, format=d.format, kind=d.kind, task=d.task, num_samples=d.num_samples,
            num_test_samples=d.num_test_samples, sample_shape=d.sample_shape, dtype=d.dtype, num_classes=d.num_classes,
            class_names=d.class_names, class_counts=d.class_counts, stats=d.stats, details=d.details,
            size_bytes=d.size_bytes, sha256=d.sha256, created_at=d.created_at,
        )


class DatasetList(PageOut):
    items: list[DatasetOut]
    next_cursor: str | None


router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

def _options(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        options = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"options must be a JSON object ({exc})", [detail(["body", "options"], "not JSON")]) from None
    if not isinstance(options, dict):
        raise InvalidInput("options must be a JSON object", [detail(["body", "options"], "not an object")])
    return options


UPLOAD_FIELDS = ("file", "name", "format", "options")


async def only_upload_fields(request: Request) -> None:
    """An unknown form field is a 422 naming it: ``-F label_column=x`` was silently dropped, and
    the error then spoke of a missing column ``label``. (The form FastAPI parsed, not a second parse.)"""
    unknown = sorted(set((await request.form()).keys()) - set(UPLOAD_FIELDS))
    if unknown:
        hint = "; a format's options go in the JSON field options, e.g. -F 'options={\"label_column\": \"species\"}'"
        raise InvalidInput(f"unknown form field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} (known: {', '.join(UPLOAD_FIELDS)}){hint}",
                           [detail(["body", name], "unknown field") for name in unknown])


@router.post("", status_code=201, response_model=DatasetOut, operation_id="uploadDataset", responses=errors(413, 429),
             dependencies=[Depends(only_upload_fields)])
def upload_dataset(
    caller: UploadCaller, reads: ReadSessionDep, session: SessionDep, settings: SettingsDep, store: StoreDep, response: Response,
    file: Annotated[list[UploadFile], File(min_length=1, description="one or more files (IDX: the images and labels files, optionally the test pair)")],
    name: Annotated[str, Form(min_length=1, max_length=200)],
    # A plain string, so an unknown format gets the service's own message; the schema still lists them.
    format: Annotated[str, Form(description="the upload's format", json_schema_extra={"enum": list(ingest.FORMATS)})],
    options: Annotated[str | None, Form(description='JSON object, e.g. {"label_column": "species"} or {"size": [32, 32], "channels": 1}')] = None,
    idempotency_key: IdempotencyKeyHeader = None,
):
    dataset_service.check_room(session=reads, tenant_id=caller.tenant_id)
    reads.close()  # nothing stays open through the conversion
    uploads = [ingest.Upload(filename=f.filename or f"file{i}", file=f.file) for i, f in enumerate(file)]
    asked_options = _options(options)
    dataset = dataset_service.create(
        session=session, store=store, tenant_id=caller.tenant_id, name=name, fmt=format,
        uploads=uploads, options=asked_options, limits=ingest.IngestLimits.of(settings),
    )
    # What was sent is known once it has streamed in: a retry is recognised, and its copy dropped, after the upload.
    once = Once(session=session, settings=settings, tenant_id=caller.tenant_id, route="uploadDataset", key=idempotency_key)
    asked = idempotency.fingerprint(name, format, asked_options, dataset.sha256)
    try:
        replay = once.earlier(asked)
    except BaseException:
        dataset_service.discard(store, dataset.id)
        raise
    if replay:
        session.rollback()
        dataset_service.discard(store, dataset.id)
        return replay
    out, location = DatasetOut.of(dataset), f"/v1/datasets/{dataset.id}"
    if replay := once.commit(asked, idempotency.Answer(201, out.model_dump(mode="json"), location), undo=lambda: dataset_service.discard(store, dataset.id)):
        return replay
    response.headers["Location"] = location
    return out


@router.get("", response_model=DatasetList, operation_id="listDatasets", responses=errors())
def list_datasets(caller: ReadCaller, session: ReadSessionDep, page: PageDep):
    return DatasetList.of(dataset_service.list_datasets(session=session, tenant_id=caller.tenant_id, limit=page.limit, cursor=page.cursor))


@router.get("/{dataset_id}", response_model=DatasetOut, operation_id="getDataset", responses=errors(404))
def get_dataset(dataset_id: str, caller: ReadCaller, session: ReadSessionDep):
    return DatasetOut.of(dataset_service.get(session=session, tenant_id=caller.tenant_id, dataset_id=dataset_id))


@router.delete("/{dataset_id}", status_code=204, operation_id="deleteDataset", responses=errors(404, 409))
def delete_dataset(dataset_id: str, caller: TrainCaller, session: SessionDep, store: StoreDep):
    dataset_service.delete(session=session, store=store, tenant_id=caller.tenant_id, dataset_id=dataset_id)
    session.commit()
    return Response(status_code=204)


@router.get("/{dataset_id}/preview", operation_id="previewDataset", responses={**errors(404, 413), 200: {"content": {"image/png": {}, "application/json": {}}}})
def preview_dataset(dataset_id: str, caller: ReadCaller, session: ReadSessionDep, store: StoreDep, settings: SettingsDep,
                    n: Annotated[int, Query(ge=1, le=256)] = 16):
    dataset = dataset_service.get(session=session, tenant_id=caller.tenant_id, dataset_id=dataset_id)
    session.close()  # the row is read: no connection stays held while the samples are drawn
    result = dataset_service.preview(store=store, dataset=dataset, n=n, max_elements=settings.max_response_elements)
    if isinstance(result, dict):
        return JSONResponse(result)
    return Response(result, media_type="image/png")

"""Datasets over REST: multipart upload (streamed to disk), reads, delete, preview."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.responses import JSONResponse

from app import ingest
from app.artifacts import ArtifactStore
from app.deps import CallerDep, SessionDep, SettingsDep
from app.errors import InvalidInput, detail
from app.schemas import DatasetList, DatasetOut
from app.services import datasets as dataset_service

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

FORMATS = ("npz", "csv", "idx", "image-zip", "sequences")


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


@router.post("", status_code=201, response_model=DatasetOut)
def upload_dataset(
    caller: CallerDep, session: SessionDep, settings: SettingsDep, response: Response,
    file: Annotated[list[UploadFile], File(description="one or more files (IDX: the images and labels files, optionally the test pair)")],
    name: Annotated[str, Form(min_length=1, max_length=200)],
    format: Annotated[str, Form(description=f"one of: {', '.join(FORMATS)}")],
    options: Annotated[str | None, Form(description='JSON object, e.g. {"label_column": "species"} or {"size": [32, 32], "channels": 1}')] = None,
):
    if format not in FORMATS:
        raise InvalidInput(f"unknown format {format!r}; one of: {', '.join(FORMATS)}", [detail(["body", "format"], f"one of: {', '.join(FORMATS)}")])
    store = ArtifactStore(settings.artifacts_dir)
    uploads = [ingest.Upload(filename=f.filename or f"file{i}", file=f.file) for i, f in enumerate(file)]
    dataset = dataset_service.create(
        session=session, store=store, tenant_id=caller.tenant_id, name=name, fmt=format,
        uploads=uploads, options=_options(options), limits=settings.ingest_limits,
    )
    try:
        session.commit()
    except BaseException:
        dataset_service.discard(store, dataset.id)
        raise
    response.headers["Location"] = f"/v1/datasets/{dataset.id}"
    return DatasetOut.of(dataset)


@router.get("", response_model=DatasetList)
def list_datasets(
    caller: CallerDep, session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
):
    page = dataset_service.list_datasets(session=session, tenant_id=caller.tenant_id, limit=limit, cursor=cursor)
    return DatasetList(items=[DatasetOut.of(d) for d in page.items], next_cursor=page.next_cursor)


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, caller: CallerDep, session: SessionDep):
    return DatasetOut.of(dataset_service.get(session=session, tenant_id=caller.tenant_id, dataset_id=dataset_id))


@router.delete("/{dataset_id}", status_code=204)
def delete_dataset(dataset_id: str, caller: CallerDep, session: SessionDep, settings: SettingsDep):
    dataset_service.delete(session=session, store=ArtifactStore(settings.artifacts_dir), tenant_id=caller.tenant_id, dataset_id=dataset_id)
    session.commit()
    return Response(status_code=204)


@router.get("/{dataset_id}/preview", responses={200: {"content": {"image/png": {}, "application/json": {}}}})
def preview_dataset(dataset_id: str, caller: CallerDep, session: SessionDep, settings: SettingsDep, n: Annotated[int, Query(ge=1, le=256)] = 16):
    dataset = dataset_service.get(session=session, tenant_id=caller.tenant_id, dataset_id=dataset_id)
    result = dataset_service.preview(store=ArtifactStore(settings.artifacts_dir), dataset=dataset, n=n)
    if isinstance(result, dict):
        return JSONResponse(result)
    png, media_type = result
    return Response(png, media_type=media_type)

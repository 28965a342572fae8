"""The datasets that ship with the service, for a client to offer (the dashboard's picker). A path
of its own: under /v1/datasets/ it would shadow a dataset id, and the methods at that path would
be the union of two routes'."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.deps import ReadCaller
from app.api.errors import errors
from app.core.datasets import catalog

router = APIRouter(prefix="/v1/builtin-datasets", tags=["datasets"])


class BuiltinDatasetOut(BaseModel):
    name: str = Field(description="what data.dataset takes; N marks a parameter")
    example: str = Field(description="a ref that works as written")
    kind: str = Field(description="image | tabular | sequence")
    description: str


@router.get("", response_model=list[BuiltinDatasetOut], operation_id="listBuiltinDatasets", responses=errors())
def list_builtin_datasets(caller: ReadCaller):
    """Usable by every tenant as ``data.dataset``."""
    return [BuiltinDatasetOut(name=b.name, example=b.example, kind=b.info.kind, description=b.description) for b in catalog.BUILTINS]

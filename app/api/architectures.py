"""What can be trained, with each architecture's parameter schema and size."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.deps import ReadCaller
from app.api.errors import errors
from app.core import architectures


class ArchitectureOut(BaseModel):
    name: str
    description: str
    task: str
    input: dict[str, Any]
    params_schema: dict[str, Any]
    defaults: dict[str, Any]
    example_input_shape: list[int]
    submodules: list[str] = Field(description="top-level submodules, the names init_from.freeze takes")
    parameter_count: int
    parameter_count_note: str


router = APIRouter(prefix="/v1/architectures", tags=["architectures"])


@router.get("", response_model=list[ArchitectureOut], operation_id="listArchitectures", responses=errors())
def list_architectures(caller: ReadCaller):
    return [architectures.describe(name) for name in architectures.architecture_names()]

"""The bridge between the registry in ``models/`` and the API: parameter schemas as pydantic
models (built from the registry's dataclass metadata), listing, and the submit-time check."""

from __future__ import annotations

import dataclasses
import typing
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

import models
from app.core.errors import InvalidInput, detail
from app.core.json_input import Integer

_BOUND_KEYS = ("ge", "gt", "le", "lt", "max_length", "min_length")


def _field_type(f: dataclasses.Field, base: Any) -> Any:
    meta = f.metadata
    if "choices" in meta:
        return Literal[tuple(meta["choices"])]
    if typing.get_origin(base) is list:
        (item,) = typing.get_args(base)
        item_bounds = {k[5:]: v for k, v in meta.items() if k.startswith("item_")}
        return list[Annotated[Integer if item is int else item, Field(**item_bounds)]]
    return Integer if base is int else base


@lru_cache(maxsize=None)
def params_model(name: str) -> type[BaseModel]:
    arch = models.get(name)
    hints = typing.get_type_hints(arch.params_type)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(arch.params_type):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        bounds = {k: v for k, v in f.metadata.items() if k in _BOUND_KEYS}
        fields[f.name] = (_field_type(f, hints[f.name]), Field(default, description=f.metadata.get("description"), **bounds))
    # Strict, as every request body: a boolean is not a number, nor "3" an integer (ints do count as floats).
    return create_model(f"{name}_params", __config__=ConfigDict(extra="forbid", strict=True), **fields)


def architecture_names() -> list[str]:
    return models.names()


def validate_params(name: str, raw: dict[str, Any], loc_prefix: list[str | int]) -> Any:
    """Params as the architecture's dataclass, or a 422 naming each offending field."""
    if name not in models.names():
        raise InvalidInput(
            f"unknown architecture {name!r}; known architectures: {', '.join(models.names())}",
            [detail(loc_prefix[:-1] + ["architecture"], f"must be one of: {', '.join(models.names())}")],
        )
    try:
        checked = params_model(name).model_validate(raw)
    except ValidationError as exc:
        details = [detail(loc_prefix + list(e["loc"]), e["msg"]) for e in exc.errors()]
        raise InvalidInput(f"invalid params for {name}: " + "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in details), details) from None
    return models.get(name).make_params(checked.model_dump())


@lru_cache(maxsize=None)
def describe(name: str) -> dict[str, Any]:
    arch = models.get(name)
    params = arch.make_params()
    example_classes = 10
    return {
        "name": arch.name,
        "description": arch.description,
        "task": arch.task,
        "input": {
            "kind": arch.input.kind,
            "channels": arch.input.channels,
            "size": list(arch.input.size) if arch.input.size else None,
        },
        "params_schema": params_model(name).model_json_schema(),
        "defaults": dataclasses.asdict(params),
        "example_input_shape": list(arch.example_input_shape),
        "submodules": arch.top_level_modules(params, arch.example_input_shape, example_classes),
        "parameter_count": arch.check(params, arch.example_input_shape, example_classes),
        "parameter_count_note": f"with default params, input {list(arch.example_input_shape)}, {example_classes} classes",
    }

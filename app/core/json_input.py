"""JSON's own types for request bodies, which are validated strictly (no coercion: ``true`` is not
a number, nor ``"3"`` an integer). JSON has one number type, and JSON Schema counts ``3.0`` as the
integer 3; a Python client that computed ``64 / 2`` sends ``32.0``. So an integer field takes an
integral number, and nothing else."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # the strict integer check refuses the rest: booleans, strings, 2.5


Integer = Annotated[int, BeforeValidator(_integral)]


def bounded_integer(**bounds: int) -> Any:
    """An Integer with its bounds inside the annotation, for an optional field (``... | None``):
    bounds given to the field itself would not reach the schema's integer branch."""
    return Annotated[int, Field(**bounds), BeforeValidator(_integral)]

"""A job spec from a JSON or YAML file, with the few fields a flag may override."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


class SpecError(ValueError):
    pass


def load(path: str | Path, *, name: str | None = None, epochs: int | None = None, dataset: str | None = None,
         labels: list[str] | None = None) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror}") from None
    try:
        spec = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise SpecError(f"{path} is not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: {exc}") from None
    if not isinstance(spec, dict):
        raise SpecError(f"{path} must hold one object (the job spec), not a {type(spec).__name__}")
    if name is not None:
        spec["name"] = name
    if epochs is not None:
        spec.setdefault("training", {})["epochs"] = epochs
    if dataset is not None:
        spec.setdefault("data", {})["dataset"] = dataset
    for label in labels or []:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise SpecError(f"--label takes key=value, not {label!r}")
        spec.setdefault("labels", {})[key] = value
    return spec

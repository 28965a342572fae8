"""Answers as bytes: predict's JSON (class names, probabilities and the top k), written by orjson
straight from the arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson


def predictions(probs: np.ndarray, class_names: list[str], top_k: int | None) -> bytes:
    out: dict[str, Any] = {"predictions": [class_names[i] for i in probs.argmax(1).tolist()], "probabilities": probs}
    if top_k:
        order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
        out["top_k"] = [[{"class": class_names[j], "probability": float(row[j])} for j in picks] for row, picks in zip(probs, order.tolist())]
    return orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY)

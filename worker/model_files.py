"""A finished network as files: weights in safetensors (never pickle) and metadata in JSON."""

from __future__ import annotations

from typing import Any

import orjson
from safetensors.torch import save as safetensors_bytes
from torch import nn

from app.artifacts import MODEL_METADATA, MODEL_WEIGHTS, ArtifactStore, model_prefix


def save_model(store: ArtifactStore, model_id: str, net: nn.Module, metadata: dict[str, Any]) -> tuple[str, int]:
    """Writes both files atomically; returns the artifact folder and its size in bytes."""
    prefix = model_prefix(model_id)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in net.state_dict().items()}
    store.write_bytes(f"{prefix}/{MODEL_WEIGHTS}", safetensors_bytes(state))
    store.write_bytes(f"{prefix}/{MODEL_METADATA}", orjson.dumps(metadata, option=orjson.OPT_INDENT_2))
    return prefix, store.size(prefix)

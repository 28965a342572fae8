"""Transfer learning: start a network from a finished model's weights, replace its head, freeze parts."""

from __future__ import annotations

from safetensors.torch import load_file
from torch import nn

from app.core.artifacts import layout
from app.core.artifacts.store import ArtifactStore
from app.core.errors import JobError


def head_of(net: nn.Module) -> nn.Linear:
    """The last linear layer of ``classifier``: what a new number of classes replaces."""
    linears = [m for m in net.classifier.modules() if isinstance(m, nn.Linear)] if hasattr(net, "classifier") else []
    if not linears:
        raise JobError("init_from_mismatch", f"{type(net).__name__} has no linear layer in a `classifier` submodule to reset")
    return linears[-1]


def init_from(net: nn.Module, store: ArtifactStore, model_id: str, *, reset_head: bool, freeze: list[str]) -> None:
    with store.local_copy(layout.model_file(layout.model_prefix(model_id), "safetensors")) as path:
        weights = load_file(path)
    if reset_head:
        head = head_of(net)
        head_keys = {f"{name}.{p}" for name, m in net.named_modules() if m is head for p, _ in m.named_parameters(recurse=False)}
        weights = {k: v for k, v in weights.items() if k not in head_keys}
        missing, unexpected = net.load_state_dict(weights, strict=False)
        if set(missing) != head_keys or unexpected:
            raise JobError("init_from_mismatch", f"the weights of {model_id} do not fit this network: missing {missing}, unexpected {unexpected}")
    else:
        net.load_state_dict(weights, strict=True)
    for name in freeze:
        getattr(net, name).requires_grad_(False)

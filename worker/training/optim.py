"""Optimizers from a job's spec."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def build_optimizer(model: nn.Module, spec: dict[str, Any]) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    name = spec["name"]
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=spec["lr"], momentum=spec["momentum"], nesterov=spec["nesterov"], weight_decay=spec["weight_decay"]
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=spec["lr"], betas=tuple(spec["betas"]), eps=spec["eps"], weight_decay=spec["weight_decay"])
    if name == "adamw":
        return torch.optim.AdamW(params, lr=spec["lr"], betas=tuple(spec["betas"]), eps=spec["eps"], weight_decay=spec["weight_decay"])
    if name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=spec["lr"], alpha=spec["alpha"], momentum=spec["momentum"], eps=spec["eps"], weight_decay=spec["weight_decay"]
        )
    raise ValueError(f"unknown optimizer {name!r}")

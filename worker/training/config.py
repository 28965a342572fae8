"""What a training run is told and what it answers: TrainConfig (from a job's spec and the
settings) and TrainResult, shared by the loop and every family."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from app.core.jobs.spec import JobSpec
from app.core.settings import Settings


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    seed: int = 0
    l1: float = 0.0
    train_loss_every_steps: int = 10
    max_runtime_seconds: float | None = None
    checkpoint_every_steps: int | None = None  # besides the one at every epoch's end
    min_checkpoint_seconds: float = 0.0  # a floor on step checkpoints' interval in time (epoch ends always write theirs)
    crop_padding: int = 0  # image augmentation, applied per batch
    horizontal_flip: bool = False
    lr_schedule: dict[str, Any] | None = None
    grad_clip_norm: float | None = None
    label_smoothing: float = 0.0
    loss: str = "cross_entropy"  # or "mse", "bce" (against one-hot targets)
    frozen_modules: tuple[str, ...] = ()  # kept in eval mode too, so their batch-norm statistics stay fixed
    early_stopping: dict[str, Any] | None = None
    mixed_precision: str = "auto"  # auto: bf16 autocast on a CUDA device that has it, off elsewhere
    device: str = "cpu"

    @classmethod
    def of(cls, spec: JobSpec, settings: Settings) -> "TrainConfig":
        t = spec.training
        init = spec.model.init_from
        return cls(
            epochs=t.epochs, batch_size=t.batch_size, seed=spec.seed, l1=t.l1,
            train_loss_every_steps=settings.train_loss_every_steps,
            # The operator's limit is a ceiling (checked at submit too: a spec over it is refused).
            max_runtime_seconds=min(t.max_runtime_seconds or settings.max_runtime_seconds, settings.max_runtime_seconds),
            checkpoint_every_steps=t.checkpoint_every_steps, min_checkpoint_seconds=settings.min_checkpoint_seconds,
            crop_padding=t.augmentation.random_crop_padding if t.augmentation else 0,
            horizontal_flip=t.augmentation.horizontal_flip if t.augmentation else False,
            lr_schedule=t.lr_schedule.model_dump(), grad_clip_norm=t.grad_clip_norm,
            label_smoothing=t.label_smoothing, loss=t.loss,
            frozen_modules=tuple(init.freeze) if init else (),
            early_stopping=t.early_stopping.model_dump() if t.early_stopping else None,
            mixed_precision=t.mixed_precision,
            device=resolve_device(settings.device),
        )


@dataclass
class TrainResult:
    stop_reason: str | None  # None when every epoch ran
    epochs_done: int
    steps_done: int
    final_metrics: dict[str, float] = field(default_factory=dict)


def resolve_device(name: str) -> str:
    """"auto" means the GPU where there is one."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name

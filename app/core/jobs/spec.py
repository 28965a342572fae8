"""The job a client submits, as pydantic models. Field-level bounds live here; the checks that
need the registry or the dataset catalog are in ``app.core.jobs.validation``."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

import models
from app.core.json_input import Integer, bounded_integer


class _Strict(BaseModel):
    # No unknown fields, and no coercion: a boolean is not a number, nor "3" an integer (JSON's own
    # types only; an integer does count as a float).
    model_config = ConfigDict(extra="forbid", strict=True)


class InitFromSpec(_Strict):
    model_id: str = Field(min_length=1, max_length=64, description="a finished model of yours to start from")
    freeze: list[str] = Field(default_factory=list, max_length=16, description="top-level submodules to keep fixed, e.g. [\"features\"]")
    reset_head: bool = Field(False, description="replace the last layer of `classifier` (needed when the number of classes differs)")


class ModelSpec(_Strict):
    architecture: str = Field(min_length=1, max_length=64, examples=["lenet5"],
                              json_schema_extra={"enum": models.names()}, description="GET /v1/architectures lists them")
    params: dict[str, Any] = Field(default_factory=dict, description="omitted with init_from: the source model's")
    init_from: InitFromSpec | None = Field(None, description="transfer learning: start from a finished model's weights")


class DataSpec(_Strict):
    dataset: str = Field(min_length=1, max_length=200, examples=["builtin:digits"], description="a dataset id (ds_...) or builtin:digits")
    validation_fraction: float = Field(0.2, ge=0.0, le=0.5, description="stratified, seeded hold-out of the training split for val_* metrics")
    use_test_split: bool = Field(True, description="when the dataset has an uploaded test split, report test_loss and test_accuracy on it at the end")


class AugmentationSpec(_Strict):
    random_crop_padding: Integer = Field(0, ge=0, le=16, description="pad each side by this many pixels, then crop back at a random offset")
    horizontal_flip: bool = Field(False, description="flip half of each batch left-right")


class SGDSpec(_Strict):
    name: Literal["sgd"]
    lr: float = Field(0.01, gt=0, le=10)
    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0, le=1, description="L2 penalty")


Beta = Annotated[float, Field(ge=0, lt=1, strict=True)]


class AdamSpec(_Strict):
    name: Literal["adam"]
    lr: float = Field(0.001, gt=0, le=10)
    # strict=False on the pair only, so that JSON's array becomes the tuple; its numbers stay strict.
    betas: Annotated[tuple[Beta, Beta], Field(strict=False)] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0, le=1)
    weight_decay: float = Field(0.0, ge=0, le=1, description="L2 penalty")


class AdamWSpec(AdamSpec):
    name: Literal["adamw"]  # type: ignore[assignment]
    weight_decay: float = Field(0.01, ge=0, le=1, description="decoupled weight decay")


class RMSpropSpec(_Strict):
    name: Literal["rmsprop"]
    lr: float = Field(0.01, gt=0, le=10)
    alpha: float = Field(0.99, ge=0, lt=1)
    momentum: float = Field(0.0, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0, le=1)
    weight_decay: float = Field(0.0, ge=0, le=1, description="L2 penalty")


OptimizerSpec = Annotated[Union[SGDSpec, AdamSpec, AdamWSpec, RMSpropSpec], Field(discriminator="name")]


class ScheduleSpec(_Strict):
    name: Literal["constant", "step", "cosine", "onecycle", "plateau"] = "constant"
    warmup_epochs: float = Field(0.0, ge=0, le=100, description="linear warm-up from ~0 to lr (not with onecycle, which has its own)")
    step_epochs: Integer = Field(10, ge=1, le=10_000, description="step: multiply by gamma every this many epochs")
    gamma: float = Field(0.1, gt=0, le=1)
    min_lr: float = Field(0.0, ge=0, description="cosine: the rate it ends at")
    monitor: Literal["val_loss", "train_loss"] = Field("val_loss", description="plateau: the metric watched")
    patience: Integer = Field(2, ge=0, le=1000, description="plateau: epochs without improvement before reducing")
    factor: float = Field(0.1, gt=0, lt=1, description="plateau: the reduction")


class EarlyStoppingSpec(_Strict):
    monitor: Literal["val_loss", "val_accuracy", "train_loss"] = "val_loss"
    patience: Integer = Field(3, ge=1, le=1000, description="epochs without improvement before stopping")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as improvement")
    restore_best: bool = Field(True, description="end with the best epoch's weights, not the last")


# What trains out of the box, per family (the architecture's task). Most frameworks' examples
# start a classifier on Adam at 1e-3; plain SGD at 0.01 left a minimal MLP at 0.669 on digits.
DEFAULT_OPTIMIZERS = {
    "classify": AdamSpec(name="adam", lr=1e-3),
    "generate": AdamSpec(name="adam", lr=2e-4, betas=(0.5, 0.999)),
    "reconstruct": SGDSpec(name="sgd", lr=0.05, momentum=0.5),
}


class TrainingSpec(_Strict):
    epochs: Integer = Field(10, ge=1, le=1000)
    batch_size: Integer = Field(64, ge=1, le=8192)
    optimizer: OptimizerSpec | None = Field(None, description=(
        "default by family, written into the job's spec at submit: classifiers Adam (lr 1e-3); GANs Adam (lr 2e-4, betas 0.5, 0.999; "
        "DCGAN's recipe); RBMs SGD (lr 0.05, momentum 0.5; Hinton's)"))
    l1: float = Field(0.0, ge=0, le=1, description="L1 penalty on weights, added to the loss")
    augmentation: AugmentationSpec | None = None
    lr_schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    grad_clip_norm: float | None = Field(None, gt=0, le=1e6, description="clip the gradients' global L2 norm")
    loss: Literal["cross_entropy", "mse", "bce"] = Field(
        "cross_entropy", description="classifiers: cross entropy; or MSE (softmax vs one-hot) or BCE (per-class sigmoid vs one-hot)")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing (all three losses)")
    early_stopping: EarlyStoppingSpec | None = None

    def optimizer_for(self, task: str) -> OptimizerSpec:
        """The optimizer asked for, else the family's default."""
        return self.optimizer if self.optimizer is not None else DEFAULT_OPTIMIZERS[task]
    mixed_precision: Literal["auto", "off", "bf16", "fp16"] = Field(
        "auto", description="GPU only: auto = bf16 autocast where the GPU has it (and channels-last for convolutions); ignored on CPU")
    max_runtime_seconds: bounded_integer(ge=1, le=30 * 24 * 3600) | None = Field(None, description="past it the job fails with reason timeout")
    checkpoint_every_steps: bounded_integer(ge=1) | None = Field(None, description="checkpoint every N steps too, not only at each epoch's end")


class ResourcesSpec(_Strict):
    device: Literal["cpu", "cuda", "any"] = Field(
        "any", description="the worker it runs on: any = a GPU worker where one is free, else a CPU worker")


LABEL_KEY = r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$"
LABEL_FILTER = r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}:"  # key:value, as GET /v1/jobs?label= takes it


class JobSpec(_Strict):
    name: str | None = Field(None, min_length=1, max_length=200, description="absent: a readable default such as lenet5-digits-3f2a")
    labels: dict[Annotated[str, StringConstraints(pattern=LABEL_KEY)], Annotated[str, StringConstraints(max_length=255)]] = Field(
        default_factory=dict, description="string key-values to find jobs by (GET /v1/jobs?label=key:value), at most KILN_MAX_LABELS",
        examples=[{"team": "vision", "sweep": "lr-3"}])
    model: ModelSpec
    data: DataSpec
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    seed: Integer = Field(0, ge=0, le=2**31 - 1)
    priority: Integer = Field(0, ge=-10, le=10, description="higher runs first; above 0 as far as the tenant's max_priority allows")
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)

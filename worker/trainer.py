"""The training loop for classifiers: backpropagation and gradient descent over shuffled batches
sliced from tensors (no per-sample Dataset, no collation), reporting through a TrainingContext.

It knows nothing of HTTP, SQL or Celery.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from worker.augment import augment
from worker.context import TrainingContext
from worker.schedule import Schedule

EVAL_BATCH = 1024


class NonFiniteLoss(ArithmeticError):
    def __init__(self, value: float, step: int, epoch: int):
        super().__init__(f"loss became {value} at step {step} (epoch {epoch})")
        self.step = step


@dataclass
class TensorData:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    lengths_train: torch.Tensor | None = None  # sequences: real lengths, passed to the network with each batch
    lengths_val: torch.Tensor | None = None
    lengths_test: torch.Tensor | None = None


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    seed: int = 0
    l1: float = 0.0
    train_loss_every_steps: int = 10
    max_runtime_seconds: float | None = None
    checkpoint_every_steps: int | None = None  # besides the one at every epoch's end
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


class StepBookkeeping:
    """What every training loop does after each step: sample values every N steps (refusing
    NaN/inf), checkpoint every N steps if asked, and honour stop requests and the deadline, with a
    checkpoint on the way out of a shutdown or a timeout (never after a lost lease: the job is
    someone else's then). Returns the stop reason, or None to go on."""

    def __init__(self, ctx: TrainingContext, config: "TrainConfig", total_steps: int, checkpoint):
        self.ctx, self.total_steps, self.checkpoint = ctx, total_steps, checkpoint
        self.every, self.ckpt_every = config.train_loss_every_steps, config.checkpoint_every_steps
        self.deadline = time.monotonic() + config.max_runtime_seconds if config.max_runtime_seconds else None

    def after_step(self, pos, epoch_number: int, sample, more_in_epoch: bool) -> str | None:
        if pos.step % self.every == 0:
            values = sample()
            for value in values.values():
                if not math.isfinite(value):
                    raise NonFiniteLoss(value, pos.step, epoch_number)
            self.ctx.report(values, step=pos.step, epoch=epoch_number)
            self.ctx.set_progress(epoch=pos.epoch, step=pos.step, total_steps=self.total_steps)
        if self.ckpt_every and pos.step % self.ckpt_every == 0 and more_in_epoch:
            self.checkpoint(pos, None)
        reason = self.ctx.stop_reason()
        if reason is None and self.deadline is not None and time.monotonic() > self.deadline:
            reason = "timeout"
        if reason in ("shutdown", "timeout"):
            self.checkpoint(pos, None)
        return reason


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


def autocast_dtype(choice: str, device: torch.device) -> torch.dtype | None:
    """bf16 needs no loss scaling, so it is the automatic choice; fp16 (with a gradient scaler) only when
    asked. Never on the CPU, where autocast slows these models down."""
    if device.type != "cuda" or choice == "off":
        return None
    if choice == "fp16":
        return torch.float16
    if choice == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def forward(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    return model(x) if lengths is None else model(x, lengths)


def classification_loss(logits: torch.Tensor, target: torch.Tensor, kind: str = "cross_entropy",
                        label_smoothing: float = 0.0, reduction: str = "mean") -> torch.Tensor:
    """Cross entropy on logits; or, as in the older literature, MSE between softmax outputs and
    one-hot targets, or BCE between per-class sigmoids and one-hot targets."""
    if kind == "cross_entropy":
        return F.cross_entropy(logits, target, label_smoothing=label_smoothing, reduction=reduction)
    one_hot = F.one_hot(target, logits.shape[1]).to(logits.dtype)
    if label_smoothing:
        one_hot = one_hot * (1 - label_smoothing) + label_smoothing / logits.shape[1]
    if kind == "mse":
        per_sample = F.mse_loss(torch.softmax(logits, dim=1), one_hot, reduction="none").sum(1)
    elif kind == "bce":
        per_sample = F.binary_cross_entropy_with_logits(logits, one_hot, reduction="none").sum(1)
    else:
        raise ValueError(f"unknown loss {kind!r}")
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None = None, loss: str = "cross_entropy") -> tuple[float, float]:
    """Mean loss (the one trained on) and accuracy over a whole split."""
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(x), EVAL_BATCH):
            rows = slice(start, start + EVAL_BATCH)
            out = forward(model, x[rows], lengths[rows] if lengths is not None else None)
            target = y[start : start + EVAL_BATCH]
            loss_sum += classification_loss(out, target, loss, reduction="sum").item()
            correct += (out.argmax(1) == target).sum().item()
    return loss_sum / len(x), correct / len(x)


class Trainer:
    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, data: TensorData, config: TrainConfig, ctx: TrainingContext):
        self.device = torch.device(config.device)
        # Datasets are small next to device memory: move them once, then every batch is a device-side gather.
        self.model = model.to(self.device)
        self.autocast_dtype = autocast_dtype(config.mixed_precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.autocast_dtype == torch.float16 else None
        if self.device.type == "cuda" and data.x_train.ndim == 4:
            # Tensor cores want NHWC for convolutions; weights follow here, inputs per batch below.
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = optimizer
        self.data = TensorData(*(t.to(self.device) if t is not None else None for t in (
            data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test,
            data.lengths_train, data.lengths_val, data.lengths_test)))
        self.config = config
        self.ctx = ctx
        self.steps_per_epoch = math.ceil(len(data.x_train) / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.schedule = Schedule(config.lr_schedule, optimizer.param_groups[0]["lr"], self.steps_per_epoch, self.total_steps)
        # L1 applies to weights, not biases or norm scales (the usual convention, as for weight decay).
        self._l1_params = [p for n, p in model.named_parameters() if p.ndim > 1] if config.l1 else []

    # -- checkpoint state ------------------------------------------------------------------------
    # A checkpoint pins the exact position in the data order: the shuffle generator's state before
    # this epoch's permutation, and how many of its batches are done. Resuming redraws the same
    # permutation and skips those batches, so a resumed run replays nothing and skips nothing.

    def _state(self, pos: "_Position") -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": pos.epoch,
            "step": pos.step,
            "batch": pos.batch,
            "epoch_rng": pos.epoch_rng,
            "loss_sum": float(pos.loss_sum),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "last_metrics": pos.last_metrics,
            "schedule": self.schedule.state_dict(),
            "grad_scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "early_stopping": {"best": pos.es_best, "bad_epochs": pos.es_bad, "best_metrics": pos.es_best_metrics,
                               "best_model": pos.es_best_model or {}},
        }

    def _restore(self, state: dict[str, Any]) -> "_Position":
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])  # follows the parameters' device
        self.schedule.load_state_dict(state["schedule"])
        if self.scaler is not None and state.get("grad_scaler"):
            self.scaler.load_state_dict(state["grad_scaler"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng"):
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        return _Position(
            epoch=int(state["epoch"]), step=int(state["step"]), batch=int(state["batch"]), epoch_rng=state["epoch_rng"],
            loss_sum=torch.tensor(state["loss_sum"], dtype=torch.float32, device=self.device),
            last_metrics=dict(state["last_metrics"]),
            es_best=state["early_stopping"]["best"], es_bad=int(state["early_stopping"]["bad_epochs"]),
            es_best_metrics=dict(state["early_stopping"]["best_metrics"]), es_best_model=state["early_stopping"]["best_model"] or None,
        )

    def _checkpoint(self, pos: "_Position", metrics: dict[str, float] | None) -> None:
        self.ctx.save_checkpoint(self._state(pos), epoch=pos.epoch, step=pos.step, metrics=metrics)

    def _early_stopping(self, pos: "_Position", metrics: dict[str, float]) -> bool:
        """Tracks the monitored metric; True once it has not improved for ``patience`` epochs."""
        es = self.config.early_stopping
        if not es:
            return False
        value = metrics.get(es["monitor"])
        if value is None:
            return False
        delta = es.get("min_delta", 0.0)
        maximise = es["monitor"].endswith("accuracy")
        improved = pos.es_best is None or (value > pos.es_best + delta if maximise else value < pos.es_best - delta)
        if improved:
            pos.es_best, pos.es_bad, pos.es_best_metrics = value, 0, dict(metrics)
            if es.get("restore_best"):
                pos.es_best_model = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            return False
        pos.es_bad += 1
        return pos.es_bad >= es["patience"]

    # -- the loop --------------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        cfg, ctx, model, optimizer = self.config, self.ctx, self.model, self.optimizer
        x, y, lengths = self.data.x_train, self.data.y_train, self.data.lengths_train
        n, bs = len(x), cfg.batch_size
        generator = torch.Generator()
        checkpoint = ctx.load_checkpoint()
        if checkpoint is not None:
            pos = self._restore(checkpoint)
        else:
            generator.manual_seed(cfg.seed)
            torch.manual_seed(cfg.seed)
            pos = _Position(epoch_rng=generator.get_state(), loss_sum=torch.zeros((), device=self.device))
        book = StepBookkeeping(ctx, cfg, self.total_steps, self._checkpoint)
        augmenting = bool(cfg.crop_padding or cfg.horizontal_flip)
        scheduled = self.schedule.name != "constant" or self.schedule.warmup_steps > 0

        while pos.epoch < cfg.epochs:
            epoch_number = pos.epoch + 1
            model.train()
            for name in cfg.frozen_modules:
                getattr(model, name).eval()
            started = time.perf_counter()
            generator.set_state(pos.epoch_rng)
            order = torch.randperm(n, generator=generator).to(self.device)
            first_batch = pos.batch
            for batch_start in range(first_batch * bs, n, bs):
                idx = order[batch_start : batch_start + bs]
                xb, yb = x.index_select(0, idx), y.index_select(0, idx)
                if augmenting:
                    xb = augment(xb, crop_padding=cfg.crop_padding, flip=cfg.horizontal_flip)
                if scheduled:
                    for group in optimizer.param_groups:
                        group["lr"] = self.schedule.lr(pos.step)
                optimizer.zero_grad(set_to_none=True)
                lb = lengths.index_select(0, idx) if lengths is not None else None
                if self.autocast_dtype is not None:
                    if xb.ndim == 4:
                        xb = xb.contiguous(memory_format=torch.channels_last)
                    with torch.autocast(self.device.type, dtype=self.autocast_dtype):
                        loss = classification_loss(forward(model, xb, lb).float(), yb, cfg.loss, cfg.label_smoothing)
                else:
                    loss = classification_loss(forward(model, xb, lb), yb, cfg.loss, cfg.label_smoothing)
                if self._l1_params:
                    loss = loss + cfg.l1 * sum(p.abs().sum() for p in self._l1_params)
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                    self.scaler.unscale_(optimizer)  # so clipping sees true gradient norms
                else:
                    loss.backward()
                if cfg.grad_clip_norm:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
                if self.scaler is not None:
                    self.scaler.step(optimizer)
                    self.scaler.update()
                else:
                    optimizer.step()
                pos.step += 1
                pos.batch += 1
                pos.loss_sum += loss.detach() * len(idx)
                reason = book.after_step(pos, epoch_number, lambda: {"train_loss": loss.item()}, batch_start + bs < n)
                if reason is not None:
                    return TrainResult(reason, pos.epoch, pos.step, pos.last_metrics)
            seconds = time.perf_counter() - started

            train_loss = pos.loss_sum.item() / n
            if not math.isfinite(train_loss):
                raise NonFiniteLoss(train_loss, pos.step, epoch_number)
            metrics = {
                "train_loss": train_loss,
                "learning_rate": optimizer.param_groups[0]["lr"],
                "samples_per_second": (n - first_batch * bs) / seconds,
                "epoch_seconds": seconds,
            }
            if self.data.x_val is not None and len(self.data.x_val):
                metrics["val_loss"], metrics["val_accuracy"] = evaluate(model, self.data.x_val, self.data.y_val, self.data.lengths_val, cfg.loss)
            self.schedule.end_of_epoch(metrics)
            stop_early = self._early_stopping(pos, metrics)
            pos.epoch, pos.batch, pos.epoch_rng = epoch_number, 0, generator.get_state()
            pos.loss_sum, pos.last_metrics = torch.zeros((), device=self.device), metrics
            ctx.report(metrics, step=pos.step, epoch=pos.epoch)
            ctx.set_progress(epoch=pos.epoch, step=pos.step, total_steps=self.total_steps)
            self._checkpoint(pos, metrics)
            if stop_early:
                ctx.report({"stopped_epoch": float(pos.epoch)}, step=pos.step, epoch=pos.epoch)
                break
        final = dict(pos.last_metrics)
        es = cfg.early_stopping
        if es and es.get("restore_best") and pos.es_best_model is not None:
            model.load_state_dict(pos.es_best_model)
            final = dict(pos.es_best_metrics)
        if self.data.x_test is not None and len(self.data.x_test):
            test = dict(zip(("test_loss", "test_accuracy"), evaluate(model, self.data.x_test, self.data.y_test, self.data.lengths_test, cfg.loss)))
            ctx.report(test, step=pos.step, epoch=pos.epoch)
            final |= test
        return TrainResult(None, pos.epoch, pos.step, final)


@dataclass
class _Position:
    """Where training stands: completed epochs, global step, batches done in the current epoch."""

    epoch_rng: torch.Tensor
    loss_sum: torch.Tensor
    epoch: int = 0
    step: int = 0
    batch: int = 0
    last_metrics: dict[str, float] = field(default_factory=dict)
    es_best: float | None = None  # early stopping: best monitored value so far
    es_bad: int = 0  # epochs since it improved
    es_best_metrics: dict[str, float] = field(default_factory=dict)
    es_best_model: dict[str, torch.Tensor] | None = None

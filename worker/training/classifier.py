"""The classifier family: backpropagation and gradient descent on labelled samples, with L1,
mixed precision, augmentation, gradient clipping, early stopping and a final test split, run by
the one epoch loop (``worker.training.loop``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from worker.context import TrainingContext
from worker.training.augment import augment
from worker.training.config import TrainConfig
from worker.training.data import TensorData
from worker.training.loop import EpochLoop, StepValues

EVAL_BATCH = 1024


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


class ClassifierTrainer(EpochLoop):

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, data: TensorData, config: TrainConfig, ctx: TrainingContext):
        device = torch.device(config.device)
        model = model.to(device)
        self.autocast_dtype = autocast_dtype(config.mixed_precision, device)
        self.scaler = torch.amp.GradScaler("cuda") if self.autocast_dtype == torch.float16 else None
        if device.type == "cuda" and data.x_train.ndim == 4:
            # Tensor cores want NHWC for convolutions; weights follow here, inputs per batch below.
            model = model.to(memory_format=torch.channels_last)
        self.data = data.to(device)
        super().__init__(config, ctx, model=model, optimizers=[optimizer], train_size=len(data.x_train))
        self.optimizer = optimizer
        self.augmenting = bool(config.crop_padding or config.horizontal_flip)
        # L1 applies to weights, not biases or norm scales (the usual convention, as for weight decay).
        self._l1_params = [p for p in model.parameters() if p.ndim > 1] if config.l1 else []
        self.loss_sum = torch.zeros((), device=device)  # the epoch's, on the device: the hot loop never synchronises
        self.es_best: float | None = None  # early stopping: best monitored value so far
        self.es_bad = 0  # epochs since it improved
        self.es_best_metrics: dict[str, float] = {}
        self.es_best_model: dict[str, torch.Tensor] | None = None

    def start_epoch(self) -> None:
        self.model.train()
        for name in self.config.frozen_modules:
            getattr(self.model, name).eval()

    def train_step(self, idx: torch.Tensor) -> StepValues:
        cfg, model, optimizer = self.config, self.model, self.optimizer
        xb, yb = self.data.x_train.index_select(0, idx), self.data.y_train.index_select(0, idx)
        if self.augmenting:
            xb = augment(xb, crop_padding=cfg.crop_padding, flip=cfg.horizontal_flip)
        optimizer.zero_grad(set_to_none=True)
        lb = self.data.lengths_train.index_select(0, idx) if self.data.lengths_train is not None else None
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
        self.loss_sum += loss.detach() * len(idx)
        return lambda: {"train_loss": loss.item()}

    def close_epoch(self) -> dict[str, float]:
        train_loss = self.loss_sum.item() / self.train_size  # the whole epoch's, also when resumed mid-epoch
        self.loss_sum = torch.zeros((), device=self.device)
        return {"train_loss": train_loss}

    def evaluate(self) -> dict[str, float]:
        data = self.data
        if data.x_val is None or not len(data.x_val):
            return {}
        val_loss, val_accuracy = evaluate(self.model, data.x_val, data.y_val, data.lengths_val, self.config.loss)
        return {"val_loss": val_loss, "val_accuracy": val_accuracy}

    def stop_early(self, metrics: dict[str, float]) -> bool:
        """Tracks the monitored metric; True once it has not improved for ``patience`` epochs."""
        es = self.config.early_stopping
        if not es:
            return False
        value = metrics.get(es["monitor"])
        if value is None:
            return False
        delta = es.get("min_delta", 0.0)
        maximise = es["monitor"].endswith("accuracy")
        improved = self.es_best is None or (value > self.es_best + delta if maximise else value < self.es_best - delta)
        if improved:
            self.es_best, self.es_bad, self.es_best_metrics = value, 0, dict(metrics)
            if es.get("restore_best"):
                self.es_best_model = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            return False
        self.es_bad += 1
        return self.es_bad >= es["patience"]

    def finish(self, metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
        """The best epoch's weights when early stopping keeps them; then the test split, if any."""
        es = self.config.early_stopping
        if es and es.get("restore_best") and self.es_best_model is not None:
            self.model.load_state_dict(self.es_best_model)
            metrics = dict(self.es_best_metrics)
        data = self.data
        if data.x_test is None or not len(data.x_test):
            return metrics, {}
        test = dict(zip(("test_loss", "test_accuracy"), evaluate(self.model, data.x_test, data.y_test, data.lengths_test, self.config.loss)))
        return metrics | test, test

    def family_state(self) -> dict[str, Any]:
        return {
            "loss_sum": float(self.loss_sum),
            "grad_scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "early_stopping": {"best": self.es_best, "bad_epochs": self.es_bad, "best_metrics": self.es_best_metrics,
                               "best_model": self.es_best_model or {}},
        }

    def load_family_state(self, state: dict[str, Any]) -> None:
        self.loss_sum = torch.tensor(state["loss_sum"], dtype=torch.float32, device=self.device)
        if self.scaler is not None and state.get("grad_scaler"):
            self.scaler.load_state_dict(state["grad_scaler"])
        es = state["early_stopping"]
        self.es_best, self.es_bad = es["best"], int(es["bad_epochs"])
        self.es_best_metrics, self.es_best_model = dict(es["best_metrics"]), es["best_model"] or None

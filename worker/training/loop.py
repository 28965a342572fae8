"""The one epoch loop every family trains in. It owns the position in the data (epochs, steps,
the shuffle generator's state), resuming from a checkpoint (RNG states included), the epoch and
step cadence, the learning-rate schedule of every optimizer, metric sampling, checkpoints, stop
requests and the deadline. A family (classifier, GAN, RBM) subclasses it and supplies what
differs: its step, its epoch-end metrics, the state it adds to a checkpoint.

A checkpoint pins the exact place in the data order: the shuffle generator's state before this
epoch's permutation and how many of its batches are done. Resuming redraws the same permutation
and skips those batches, so a resumed run replays nothing, skips nothing, and (with the same seed,
on the CPU) ends with the same weights as one that never stopped.

It reports only through its TrainingContext: no SQL, no HTTP, no Celery.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from worker.context import TrainingContext
from worker.training.config import TrainConfig, TrainResult
from worker.training.schedule import Schedule

# A step's values to report (train_loss...), computed only when the cadence asks for them: reading
# a value off the device synchronises, so the hot loop does it every N steps, not every step.
StepValues = Callable[[], dict[str, float]]


class NonFiniteLoss(ArithmeticError):
    """A loss or metric became NaN or infinite: training has diverged (JSON could not carry it anyway)."""

    def __init__(self, name: str, value: float, step: int, epoch: int):
        super().__init__(f"{name} became {value} at step {step} (epoch {epoch})")
        self.step = step


def check_finite(values: dict[str, float], step: int, epoch: int) -> None:
    for name, value in values.items():
        if not math.isfinite(value):
            raise NonFiniteLoss(name, value, step, epoch)


@dataclass
class Position:
    """Where training stands: completed epochs, global step, batches done in the current epoch."""

    epoch_rng: torch.Tensor  # the shuffle generator's state before this epoch's permutation
    epoch: int = 0
    step: int = 0
    batch: int = 0
    last_metrics: dict[str, float] = field(default_factory=dict)


class EpochLoop:
    """Subclasses call ``__init__`` with their network, optimizers and training-set size, and
    implement the hooks below; ``fit`` runs them."""

    min_batch = 1  # a last batch smaller than this is skipped (batch norm cannot train on one sample)

    def __init__(self, config: TrainConfig, ctx: TrainingContext, *, model: nn.Module, optimizers: list[torch.optim.Optimizer],
                 train_size: int):
        self.config, self.ctx = config, ctx
        self.device = torch.device(config.device)
        self.model = model
        self.optimizers = optimizers
        self.train_size = train_size
        full, rest = divmod(train_size, config.batch_size)
        self.steps_per_epoch = full + (rest >= self.min_batch if rest else 0)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.schedule = Schedule(config.lr_schedule, optimizers[0].param_groups[0]["lr"], self.steps_per_epoch, self.total_steps)

    # -- what a family supplies --------------------------------------------------------------------

    def start_fresh(self) -> None:
        """A first attempt (no checkpoint): seed the family's own generators, data-driven initialisation."""

    def start_epoch(self) -> None:
        self.model.train()

    def train_step(self, idx: torch.Tensor) -> StepValues:
        """One update on the training samples ``idx``; returns how to read its values."""
        raise NotImplementedError

    def close_epoch(self) -> dict[str, float]:
        """The epoch's training summary (from the running sums); starts the next epoch's sums."""
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        """Epoch-end metrics on held-out data."""
        return {}

    def stop_early(self, metrics: dict[str, float]) -> bool:
        """True to end training after this epoch."""
        return False

    def finish(self, metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
        """After the last epoch: the final metrics, and further values to report (a test split's)."""
        return metrics, {}

    def family_state(self) -> dict[str, Any]:
        """What a checkpoint needs besides the network, optimizers, schedule, position and RNGs."""
        return {}

    def load_family_state(self, state: dict[str, Any]) -> None:
        pass

    # -- checkpoint state ----------------------------------------------------------------------------

    def _state(self, pos: Position) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizers": [optimizer.state_dict() for optimizer in self.optimizers],
            "schedule": self.schedule.state_dict(),
            "epoch": pos.epoch,
            "step": pos.step,
            "batch": pos.batch,
            "epoch_rng": pos.epoch_rng,
            "last_metrics": pos.last_metrics,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "family": self.family_state(),
        }

    def _restore(self, state: dict[str, Any]) -> Position:
        self.model.load_state_dict(state["model"])
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)  # follows the parameters' device
        self.schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng"):
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.load_family_state(state["family"])
        return Position(epoch_rng=state["epoch_rng"], epoch=int(state["epoch"]), step=int(state["step"]),
                        batch=int(state["batch"]), last_metrics=dict(state["last_metrics"]))

    def _checkpoint(self, pos: Position, metrics: dict[str, float] | None) -> None:
        self.ctx.save_checkpoint(self._state(pos), epoch=pos.epoch, step=pos.step, metrics=metrics)
        self._last_checkpoint = time.monotonic()

    # -- the loop --------------------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        cfg, ctx = self.config, self.ctx
        n, bs = self.train_size, cfg.batch_size
        shuffle = torch.Generator()
        state = ctx.load_checkpoint()
        if state is not None:
            pos = self._restore(state)
        else:
            shuffle.manual_seed(cfg.seed)
            self.start_fresh()
            torch.manual_seed(cfg.seed)
            pos = Position(epoch_rng=shuffle.get_state())
        deadline = time.monotonic() + cfg.max_runtime_seconds if cfg.max_runtime_seconds else None
        self._last_checkpoint = time.monotonic()

        while pos.epoch < cfg.epochs:
            epoch_number = pos.epoch + 1
            self.start_epoch()
            started = time.perf_counter()
            shuffle.set_state(pos.epoch_rng)
            order = torch.randperm(n, generator=shuffle).to(self.device)
            first_batch = pos.batch
            for batch_start in range(first_batch * bs, n, bs):
                idx = order[batch_start : batch_start + bs]
                if len(idx) < self.min_batch:
                    continue
                if self.schedule.active:
                    self._set_lr(self.schedule.lr(pos.step))
                values = self.train_step(idx)
                pos.step += 1
                pos.batch += 1
                reason = self._after_step(pos, epoch_number, values, batch_start + bs < n, deadline)
                if reason is not None:
                    return TrainResult(reason, pos.epoch, pos.step, pos.last_metrics)
            seconds = time.perf_counter() - started

            metrics = {
                **self.close_epoch(),
                "learning_rate": self.optimizers[0].param_groups[0]["lr"],
                "samples_per_second": max(n - first_batch * bs, 0) / seconds,
                "epoch_seconds": seconds,
                **self.evaluate(),
            }
            check_finite(metrics, pos.step, epoch_number)
            self.schedule.end_of_epoch(metrics)
            stop = self.stop_early(metrics)
            pos.epoch, pos.batch, pos.epoch_rng, pos.last_metrics = epoch_number, 0, shuffle.get_state(), metrics
            ctx.report(metrics, step=pos.step, epoch=pos.epoch)
            ctx.set_progress(epoch=pos.epoch, step=pos.step, total_steps=self.total_steps)
            self._checkpoint(pos, metrics)
            if stop:
                ctx.report({"stopped_epoch": float(pos.epoch)}, step=pos.step, epoch=pos.epoch)
                break

        final, more = self.finish(dict(pos.last_metrics))
        check_finite(more, pos.step, pos.epoch)
        if more:
            ctx.report(more, step=pos.step, epoch=pos.epoch)
        return TrainResult(None, pos.epoch, pos.step, final)

    def _set_lr(self, lr: float) -> None:
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr

    def _after_step(self, pos: Position, epoch_number: int, values: StepValues, more_in_epoch: bool, deadline: float | None) -> str | None:
        """Sample values every N steps (refusing NaN/inf), checkpoint every N steps if asked, and
        honour stop requests and the deadline, with a checkpoint on the way out of a shutdown or a
        timeout (never after a lost lease: the job is someone else's then). Returns the stop
        reason, or None to go on."""
        cfg = self.config
        if pos.step % cfg.train_loss_every_steps == 0:
            sampled = values()
            check_finite(sampled, pos.step, epoch_number)
            self.ctx.report(sampled, step=pos.step, epoch=epoch_number)
            self.ctx.set_progress(epoch=pos.epoch, step=pos.step, total_steps=self.total_steps)
        if cfg.checkpoint_every_steps and pos.step % cfg.checkpoint_every_steps == 0 and more_in_epoch:
            if time.monotonic() - self._last_checkpoint >= cfg.min_checkpoint_seconds:  # every step would fsync every step
                self._checkpoint(pos, None)
        reason = self.ctx.stop_reason()
        if reason is None and deadline is not None and time.monotonic() > deadline:
            reason = "timeout"
        if reason is not None:  # the exact step it stopped at, for the attempt's last log line
            self.ctx.set_progress(epoch=pos.epoch, step=pos.step, total_steps=self.total_steps)
        if reason in ("shutdown", "timeout"):
            self._checkpoint(pos, None)
        return reason

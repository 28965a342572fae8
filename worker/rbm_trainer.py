"""The training loop for ``models.rbm.RBM``: contrastive divergence (CD-k, Hinton 2002) with plain
SGD and momentum, over shuffled batches, reporting through a TrainingContext exactly as
``worker.trainer.Trainer`` does. The gradient is the positive phase (data-driven statistics) minus
the negative phase (statistics after k Gibbs steps), computed by hand: no autograd.

Input range: an RBM reads its inputs as probabilities in [0, 1], but the data arrive
standardised per feature. With ``raw01=True`` the caller promises data already in [0, 1] (for
example binarised) and they are only clamped. Otherwise each feature is mapped linearly from its
[min, max] over the training split to [0, 1], which undoes the standardisation (an affine map
per feature) up to stretching each feature to its own range; features constant in training map
to 0, and other splits are clamped into the same range. Passing [0, 1] data with ``raw01=True``
is the better choice: min-max is thrown off by a single outlier.

TrainConfig fields honoured: epochs, batch_size, seed, train_loss_every_steps (the report
interval), max_runtime_seconds, checkpoint_every_steps, device. The classifier-only ones are ignored.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from models.rbm import RBM
from worker.context import TrainingContext
from worker.trainer import NonFiniteLoss, StepBookkeeping, TensorData, TrainConfig, TrainResult

EVAL_BATCH = 1024
EPS = 1e-8
PLL_SEED = 12345  # the same flipped units every epoch, so the estimates are comparable


def feature_range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.amin(dim=0), x.amax(dim=0)


def to_unit_range(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    return ((x - low) / (high - low).clamp_min(EPS)).clamp(0, 1)


def cd_k_gradients(rbm: RBM, v0: torch.Tensor, k: int, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """CD-k estimates of d log p(v) / d(W, b_v, b_h), averaged over the batch, and the batch's
    one-pass reconstruction error.

    Follows Hinton's practical guide (2010, section 3): hidden states driven by data are sampled;
    the last visible reconstruction and the hidden units it drives stay probabilities, which
    lowers the estimate's noise without biasing it much.
    """
    h0 = rbm.hidden_probs(v0)
    h = torch.bernoulli(h0, generator=generator)
    vk, hk = v0, h0
    for step in range(k):
        vk = rbm.visible_probs(h)
        if step < k - 1:
            vk = torch.bernoulli(vk, generator=generator)
        hk = rbm.hidden_probs(vk)
        if step < k - 1:
            h = torch.bernoulli(hk, generator=generator)
    n = len(v0)
    grad_w = (v0.t() @ h0 - vk.t() @ hk) / n
    grad_bv = (v0 - vk).mean(0)
    grad_bh = (h0 - hk).mean(0)
    reconstruction_error = F.mse_loss(rbm.visible_probs(h0), v0)
    return grad_w, grad_bv, grad_bh, reconstruction_error


def reconstruction_error(rbm: RBM, x: torch.Tensor) -> float:
    """Mean squared error of one deterministic up-down pass over a whole split."""
    total = 0.0
    for start in range(0, len(x), EVAL_BATCH):
        v = x[start : start + EVAL_BATCH]
        total += F.mse_loss(rbm.reconstruct(v), v, reduction="sum").item()
    return total / x.numel()


def pseudo_log_likelihood(rbm: RBM, x: torch.Tensor, generator: torch.Generator) -> float:
    """Stochastic pseudo-log-likelihood per sample: D * log P(v_i | v_-i) for one random unit i
    per sample, from the free-energy difference when v_i is flipped (exact for binary inputs;
    grey levels are flipped to 1 - v_i)."""
    total = 0.0
    for start in range(0, len(x), EVAL_BATCH):
        v = x[start : start + EVAL_BATCH]
        unit = torch.randint(0, rbm.visible, (len(v),), generator=generator, device=v.device)
        flipped = v.clone()
        rows = torch.arange(len(v), device=v.device)
        flipped[rows, unit] = 1 - flipped[rows, unit]
        total += (rbm.visible * F.logsigmoid(rbm.free_energy(flipped) - rbm.free_energy(v))).sum().item()
    return total / len(x)


@dataclass
class _Position:
    """Completed epochs, global step, batches done in the current epoch, and that epoch's sums."""

    epoch_rng: torch.Tensor  # the shuffle generator's state before this epoch's permutation
    error_sum: torch.Tensor  # kept on the device, so the hot loop never synchronises
    seen: int = 0
    epoch: int = 0
    step: int = 0
    batch: int = 0
    last_metrics: dict[str, float] = field(default_factory=dict)


class RBMTrainer:
    def __init__(self, rbm: RBM, data: TensorData, config: TrainConfig, ctx: TrainingContext,
                 lr: float = 0.05, momentum: float = 0.5, raw01: bool = False):
        self.device = torch.device(config.device)
        self.rbm = rbm.to(self.device)
        x_train = data.x_train.to(self.device).reshape(len(data.x_train), -1).float()
        x_val = data.x_val.to(self.device).reshape(len(data.x_val), -1).float() if data.x_val is not None and len(data.x_val) else None
        if raw01:
            self.data_low, self.data_high = torch.zeros(rbm.visible, device=self.device), torch.ones(rbm.visible, device=self.device)
        else:
            self.data_low, self.data_high = feature_range(x_train)
        self.x_train = to_unit_range(x_train, self.data_low, self.data_high)
        self.x_eval = to_unit_range(x_val, self.data_low, self.data_high) if x_val is not None else self.x_train
        self.config, self.ctx = config, ctx
        self.lr, self.momentum = lr, momentum
        self.params = [rbm.weight, rbm.visible_bias, rbm.hidden_bias]
        self.velocity = [torch.zeros_like(p) for p in self.params]
        self.sampling = torch.Generator(device=self.device)  # Gibbs sampling draws, checkpointed
        self.steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs

    # -- checkpoint state ------------------------------------------------------------------------

    def _state(self, pos: _Position) -> dict[str, Any]:
        return {
            "model": self.rbm.state_dict(),
            "velocity": [v.clone() for v in self.velocity],
            "epoch": pos.epoch,
            "step": pos.step,
            "batch": pos.batch,
            "epoch_rng": pos.epoch_rng,
            "sampling_rng": self.sampling.get_state(),
            "sums": {"seen": pos.seen, "error_sum": pos.error_sum.item()},
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "last_metrics": pos.last_metrics,
            "data_range": {"low": self.data_low.cpu(), "high": self.data_high.cpu()},
        }

    def _restore(self, state: dict[str, Any]) -> _Position:
        self.rbm.load_state_dict(state["model"])
        self.velocity = [v.to(self.device) for v in state["velocity"]]
        self.sampling.set_state(state["sampling_rng"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng"):
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        return _Position(
            epoch_rng=state["epoch_rng"], seen=int(state["sums"]["seen"]),
            error_sum=torch.tensor(state["sums"]["error_sum"], device=self.device),
            epoch=int(state["epoch"]), step=int(state["step"]), batch=int(state["batch"]),
            last_metrics=dict(state["last_metrics"]),
        )

    def _checkpoint(self, pos: _Position, metrics: dict[str, float] | None) -> None:
        self.ctx.save_checkpoint(self._state(pos), epoch=pos.epoch, step=pos.step, metrics=metrics)

    def _init_visible_bias(self) -> None:
        """b_v = log(p / (1 - p)) for each unit's mean training activation p (Hinton 2010, 8.1):
        the hidden units then start by modelling what the biases cannot."""
        p = self.x_train.mean(0).clamp(0.01, 0.99)
        self.rbm.visible_bias.copy_(torch.log(p / (1 - p)))

    # -- the loop --------------------------------------------------------------------------------

    @torch.no_grad()
    def fit(self) -> TrainResult:
        cfg, ctx, rbm, x = self.config, self.ctx, self.rbm, self.x_train
        n, bs = len(x), cfg.batch_size
        shuffle = torch.Generator()
        checkpoint = ctx.load_checkpoint()
        if checkpoint is not None:
            pos = self._restore(checkpoint)
        else:
            shuffle.manual_seed(cfg.seed)
            self.sampling.manual_seed(cfg.seed + 1)  # a stream of its own, not the shuffle's
            torch.manual_seed(cfg.seed)
            self._init_visible_bias()
            pos = _Position(epoch_rng=shuffle.get_state(), error_sum=torch.zeros((), device=self.device))
        book = StepBookkeeping(ctx, cfg, self.total_steps, self._checkpoint)

        while pos.epoch < cfg.epochs:
            epoch_number = pos.epoch + 1
            started = time.perf_counter()
            shuffle.set_state(pos.epoch_rng)
            order = torch.randperm(n, generator=shuffle).to(self.device)
            first_batch = pos.batch
            for batch_start in range(first_batch * bs, n, bs):
                v0 = x.index_select(0, order[batch_start : batch_start + bs])
                *grads, error = cd_k_gradients(rbm, v0, rbm.k, self.sampling)
                for param, velocity, grad in zip(self.params, self.velocity, grads):
                    velocity.mul_(self.momentum).add_(grad, alpha=self.lr)
                    param.add_(velocity)  # ascent: CD estimates the log-likelihood's gradient
                pos.step += 1
                pos.batch += 1
                pos.seen += len(v0)
                pos.error_sum += error * len(v0)
                reason = book.after_step(pos, epoch_number, lambda: {"train_reconstruction_error": error.item()}, batch_start + bs < n)
                if reason is not None:
                    return TrainResult(reason, pos.epoch, pos.step, pos.last_metrics)
            seconds = time.perf_counter() - started

            pll_generator = torch.Generator(device=self.device)
            pll_generator.manual_seed(PLL_SEED)
            metrics = {
                "train_reconstruction_error": pos.error_sum.item() / max(pos.seen, 1),
                "reconstruction_error": reconstruction_error(rbm, self.x_eval),
                "pseudo_log_likelihood": pseudo_log_likelihood(rbm, self.x_eval, pll_generator),
                "samples_per_second": (n - first_batch * bs) / seconds,
                "epoch_seconds": seconds,
            }
            for name in ("reconstruction_error", "pseudo_log_likelihood"):
                if not math.isfinite(metrics[name]):
                    raise NonFiniteLoss(metrics[name], pos.step, epoch_number)
            pos.epoch, pos.batch, pos.epoch_rng = epoch_number, 0, shuffle.get_state()
            pos.seen, pos.error_sum, pos.last_metrics = 0, torch.zeros((), device=self.device), metrics
            ctx.report(metrics, step=pos.step, epoch=pos.epoch)
            ctx.set_progress(epoch=pos.epoch, step=pos.step, total_steps=self.total_steps)
            self._checkpoint(pos, metrics)
        return TrainResult(None, pos.epoch, pos.step, dict(pos.last_metrics))

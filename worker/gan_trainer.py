"""The training loop for ``models.gan.GAN``: alternating discriminator and generator Adam steps
(DCGAN, Radford et al. 2015) over shuffled batches, reporting through a TrainingContext exactly
as ``worker.trainer.Trainer`` does.

Losses are BCE with logits; the generator uses the non-saturating loss (it maximises log D(G(z))
rather than minimising log(1 - D(G(z))), Goodfellow et al. 2014), which keeps its gradients
alive while the discriminator is winning.

Pixel range: the generator ends in Tanh, but the data arrive standardised per channel. Each
channel is mapped linearly from its [min, max] over the training split to [-1, 1]. Standardising
is itself a per-channel affine map of the [0, 1]-scaled pixels, so this recovers those pixels
(stretched to the channel's range) exactly, and the mapping is the same for every batch.
``to_data_units`` maps generated images back. Other splits are clamped into the same range.

TrainConfig fields honoured: epochs, batch_size, seed, train_loss_every_steps (the report
interval), max_runtime_seconds, checkpoint_every_steps, grad_clip_norm, label_smoothing (one-sided:
real targets become 1 - label_smoothing, Salimans et al. 2016), device. The classifier-only ones
(l1, lr_schedule, augmentation, frozen_modules, early_stopping) are ignored.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from models.gan import GAN
from worker.context import TrainingContext
from worker.trainer import NonFiniteLoss, StepBookkeeping, TensorData, TrainConfig, TrainResult

EPS = 1e-8
# Per-epoch running sums, kept on the device so the hot loop never synchronises.
SEEN, D_LOSS, G_LOSS, REAL_CORRECT, FAKE_CORRECT = range(5)
SUMS = 5


def channel_range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel minimum and maximum of images [N, C, H, W], each shaped [1, C, 1, 1]."""
    return x.amin(dim=(0, 2, 3), keepdim=True), x.amax(dim=(0, 2, 3), keepdim=True)


def to_tanh_range(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Linear map of [low, high] onto [-1, 1], clamped; a constant channel becomes -1."""
    return (2 * (x - low) / (high - low).clamp_min(EPS) - 1).clamp(-1, 1)


@dataclass
class _Position:
    """Completed epochs, global step, batches done in the current epoch, and that epoch's sums."""

    epoch_rng: torch.Tensor  # the shuffle generator's state before this epoch's permutation
    sums: torch.Tensor
    epoch: int = 0
    step: int = 0
    batch: int = 0
    last_metrics: dict[str, float] = field(default_factory=dict)


class GANTrainer:
    def __init__(self, gan: GAN, data: TensorData, config: TrainConfig, ctx: TrainingContext,
                 lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999)):
        self.device = torch.device(config.device)
        self.gan = gan.to(self.device)
        x_train = data.x_train.to(self.device)
        self.data_low, self.data_high = channel_range(x_train)
        self.x_train = to_tanh_range(x_train, self.data_low, self.data_high)
        self.config = config
        self.ctx = ctx
        self.d_optimizer = torch.optim.Adam(gan.discriminator.parameters(), lr=lr, betas=betas)
        self.g_optimizer = torch.optim.Adam(gan.generator.parameters(), lr=lr, betas=betas)
        self.noise = torch.Generator(device=self.device)  # the generator's latent draws, checkpointed
        # a last batch of one sample is dropped (see fit), so it is no step
        self.steps_per_epoch = len(x_train) // config.batch_size + (len(x_train) % config.batch_size > 1)
        self.total_steps = self.steps_per_epoch * config.epochs

    def to_data_units(self, images: torch.Tensor) -> torch.Tensor:
        """Generated images in [-1, 1] -> the standardised units the training data came in."""
        return (images + 1) / 2 * (self.data_high - self.data_low) + self.data_low

    # -- checkpoint state ------------------------------------------------------------------------
    # As in Trainer: the shuffle generator's state before the epoch and the batches done pin the
    # exact place in the data order; the noise generator's state pins the latent draws.

    def _state(self, pos: _Position) -> dict[str, Any]:
        return {
            "model": self.gan.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
            "g_optimizer": self.g_optimizer.state_dict(),
            "epoch": pos.epoch,
            "step": pos.step,
            "batch": pos.batch,
            "epoch_rng": pos.epoch_rng,
            "noise_rng": self.noise.get_state(),
            "sums": pos.sums.tolist(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "last_metrics": pos.last_metrics,
            "data_range": {"low": self.data_low.cpu(), "high": self.data_high.cpu()},
        }

    def _restore(self, state: dict[str, Any]) -> _Position:
        self.gan.load_state_dict(state["model"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.noise.set_state(state["noise_rng"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng"):
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        return _Position(
            epoch_rng=state["epoch_rng"], sums=torch.tensor(state["sums"], dtype=torch.float32, device=self.device),
            epoch=int(state["epoch"]), step=int(state["step"]), batch=int(state["batch"]),
            last_metrics=dict(state["last_metrics"]),
        )

    def _checkpoint(self, pos: _Position, metrics: dict[str, float] | None) -> None:
        self.ctx.save_checkpoint(self._state(pos), epoch=pos.epoch, step=pos.step, metrics=metrics)

    # -- one step ----------------------------------------------------------------------------------

    def _clip(self, module: torch.nn.Module) -> None:
        if self.config.grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.config.grad_clip_norm)

    def _step(self, real: torch.Tensor, sums: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One discriminator update then one generator update; returns both losses (detached)."""
        gan, n = self.gan, len(real)
        real_target = torch.full((n, 1), 1.0 - self.config.label_smoothing, device=self.device)
        zeros, ones = torch.zeros((n, 1), device=self.device), torch.ones((n, 1), device=self.device)
        fake = gan.generate(n, self.noise)

        # Discriminator: real -> 1, generated -> 0. Real and fake go through separately, as in
        # DCGAN, so batch norm never mixes the two distributions' statistics.
        self.d_optimizer.zero_grad(set_to_none=True)
        real_logits = gan.discriminator(real)
        fake_logits = gan.discriminator(fake.detach())
        d_loss = F.binary_cross_entropy_with_logits(real_logits, real_target) + \
            F.binary_cross_entropy_with_logits(fake_logits, zeros)
        d_loss.backward()
        self._clip(gan.discriminator)
        self.d_optimizer.step()

        # Generator, non-saturating: make the freshly updated discriminator call the fakes real.
        self.g_optimizer.zero_grad(set_to_none=True)
        g_loss = F.binary_cross_entropy_with_logits(gan.discriminator(fake), ones)
        g_loss.backward()
        self._clip(gan.generator)
        self.g_optimizer.step()

        # Accuracies are those of the discriminator before this step's update, on this batch.
        sums[SEEN] += n
        sums[D_LOSS] += d_loss.detach() * n
        sums[G_LOSS] += g_loss.detach() * n
        sums[REAL_CORRECT] += (real_logits.detach() > 0).sum()
        sums[FAKE_CORRECT] += (fake_logits.detach() < 0).sum()
        return d_loss.detach(), g_loss.detach()

    # -- the loop --------------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        cfg, ctx, x = self.config, self.ctx, self.x_train
        n, bs = len(x), cfg.batch_size
        shuffle = torch.Generator()
        checkpoint = ctx.load_checkpoint()
        if checkpoint is not None:
            pos = self._restore(checkpoint)
        else:
            shuffle.manual_seed(cfg.seed)
            self.noise.manual_seed(cfg.seed + 1)  # a stream of its own, not the shuffle's
            torch.manual_seed(cfg.seed)
            pos = _Position(epoch_rng=shuffle.get_state(), sums=torch.zeros(SUMS, device=self.device))
        book = StepBookkeeping(ctx, cfg, self.total_steps, self._checkpoint)

        while pos.epoch < cfg.epochs:
            epoch_number = pos.epoch + 1
            self.gan.train()
            started = time.perf_counter()
            shuffle.set_state(pos.epoch_rng)
            order = torch.randperm(n, generator=shuffle).to(self.device)
            first_batch = pos.batch
            for batch_start in range(first_batch * bs, n, bs):
                idx = order[batch_start : batch_start + bs]
                if len(idx) < 2:
                    continue  # batch norm cannot train on a single sample; drop a last batch of one
                d_loss, g_loss = self._step(x.index_select(0, idx), pos.sums)
                pos.step += 1
                pos.batch += 1
                reason = book.after_step(pos, epoch_number, lambda: {"d_loss": d_loss.item(), "g_loss": g_loss.item()}, batch_start + bs < n)
                if reason is not None:
                    return TrainResult(reason, pos.epoch, pos.step, pos.last_metrics)
            seconds = time.perf_counter() - started

            seen, d_loss_sum, g_loss_sum, real_correct, fake_correct = pos.sums.tolist()
            counted = max(seen, 1.0)  # the whole epoch's samples, also when resumed mid-epoch
            metrics = {
                "d_loss": d_loss_sum / counted,
                "g_loss": g_loss_sum / counted,
                "d_real_accuracy": real_correct / counted,
                "d_fake_accuracy": fake_correct / counted,
                "samples_per_second": (n - first_batch * bs) / seconds,
                "epoch_seconds": seconds,
            }
            for name in ("d_loss", "g_loss"):
                if not math.isfinite(metrics[name]):
                    raise NonFiniteLoss(metrics[name], pos.step, epoch_number)
            pos.epoch, pos.batch, pos.epoch_rng = epoch_number, 0, shuffle.get_state()
            pos.sums, pos.last_metrics = torch.zeros(SUMS, device=self.device), metrics
            ctx.report(metrics, step=pos.step, epoch=pos.epoch)
            ctx.set_progress(epoch=pos.epoch, step=pos.step, total_steps=self.total_steps)
            self._checkpoint(pos, metrics)
        return TrainResult(None, pos.epoch, pos.step, dict(pos.last_metrics))

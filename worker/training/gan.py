"""The GAN family: alternating discriminator and generator steps (DCGAN, Radford et al. 2015),
each network with its own optimizer of the job's kind, run by the one epoch loop.

Losses are BCE with logits; the generator uses the non-saturating loss (it maximises log D(G(z))
rather than minimising log(1 - D(G(z))), Goodfellow et al. 2014), which keeps its gradients
alive while the discriminator is winning.

Pixel range: the generator ends in Tanh, and the data arrive scaled to [0, 1]. Each channel is
mapped linearly from its [min, max] over the training split to [-1, 1] (``models.gan.to_tanh_range``);
the model card records that range so generation maps images back (``from_tanh_range``).

TrainConfig fields honoured besides the loop's: grad_clip_norm (each network's gradients),
label_smoothing (one-sided: real targets become 1 - label_smoothing, Salimans et al. 2016).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from app.core.jobs.spec import DEFAULT_OPTIMIZERS
from models.gan import GAN, to_tanh_range
from worker.context import TrainingContext
from worker.training.config import TrainConfig
from worker.training.data import TensorData
from worker.training.loop import EpochLoop, StepValues
from worker.training.optim import build_optimizer

# DCGAN's recipe: Adam at 2e-4 with beta1 0.5.
DEFAULT_OPTIMIZER = DEFAULT_OPTIMIZERS["generate"].model_dump()  # one default, in the spec
# Per-epoch running sums, kept on the device so the hot loop never synchronises.
SEEN, D_LOSS, G_LOSS, REAL_CORRECT, FAKE_CORRECT = range(5)
SUMS = 5


def channel_range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel minimum and maximum of images [N, C, H, W], each shaped [1, C, 1, 1]."""
    return x.amin(dim=(0, 2, 3), keepdim=True), x.amax(dim=(0, 2, 3), keepdim=True)


class GANTrainer(EpochLoop):
    min_batch = 2  # batch norm cannot train on a single sample: a last batch of one is dropped

    def __init__(self, gan: GAN, data: TensorData, config: TrainConfig, ctx: TrainingContext, optimizer: dict[str, Any] | None = None):
        device = torch.device(config.device)
        self.gan = gan.to(device)
        x_train = data.x_train.to(device)
        self.data_low, self.data_high = channel_range(x_train)
        self.x_train = to_tanh_range(x_train, self.data_low, self.data_high)
        self.d_optimizer = build_optimizer(gan.discriminator, optimizer or DEFAULT_OPTIMIZER)
        self.g_optimizer = build_optimizer(gan.generator, optimizer or DEFAULT_OPTIMIZER)
        super().__init__(config, ctx, model=self.gan, optimizers=[self.d_optimizer, self.g_optimizer], train_size=len(x_train))
        self.noise = torch.Generator(device=device)  # the generator's latent draws, checkpointed
        self.sums = torch.zeros(SUMS, device=device)

    def output_range(self) -> dict[str, list[float]]:
        """The per-channel range the generator's [-1, 1] stands for, for the model card."""
        return {"low": self.data_low.tolist(), "high": self.data_high.tolist()}

    def start_fresh(self) -> None:
        self.noise.manual_seed(self.config.seed + 1)  # a stream of its own, not the shuffle's

    def _clip(self, module: torch.nn.Module) -> None:
        if self.config.grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.config.grad_clip_norm)

    def train_step(self, idx: torch.Tensor) -> StepValues:
        """One discriminator update then one generator update."""
        gan, real = self.gan, self.x_train.index_select(0, idx)
        n = len(real)
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
        sums = self.sums
        sums[SEEN] += n
        sums[D_LOSS] += d_loss.detach() * n
        sums[G_LOSS] += g_loss.detach() * n
        sums[REAL_CORRECT] += (real_logits.detach() > 0).sum()
        sums[FAKE_CORRECT] += (fake_logits.detach() < 0).sum()
        return lambda: {"d_loss": d_loss.item(), "g_loss": g_loss.item()}

    def close_epoch(self) -> dict[str, float]:
        seen, d_loss_sum, g_loss_sum, real_correct, fake_correct = self.sums.tolist()
        self.sums = torch.zeros(SUMS, device=self.device)
        counted = max(seen, 1.0)  # the whole epoch's samples, also when resumed mid-epoch
        return {
            "d_loss": d_loss_sum / counted,
            "g_loss": g_loss_sum / counted,
            "d_real_accuracy": real_correct / counted,
            "d_fake_accuracy": fake_correct / counted,
        }

    def family_state(self) -> dict[str, Any]:
        return {"noise_rng": self.noise.get_state(), "sums": self.sums.tolist()}

    def load_family_state(self, state: dict[str, Any]) -> None:
        self.noise.set_state(state["noise_rng"])
        self.sums = torch.tensor(state["sums"], dtype=torch.float32, device=self.device)

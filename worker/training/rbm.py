"""The RBM family: contrastive divergence (CD-k, Hinton 2002) run by the one epoch loop. The
gradient is the positive phase (data-driven statistics) minus the negative phase (statistics
after k Gibbs steps), computed by hand, no autograd; the job's optimizer (SGD with momentum by
default, Adam or any other) then applies it, so the learning-rate schedules apply as for any family.

Input range: an RBM reads its inputs as probabilities in [0, 1]. Generative models learn data
scaled to [0, 1] (no standardisation), and values outside are clamped.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from app.core.jobs.spec import DEFAULT_OPTIMIZERS
from models.rbm import RBM
from worker.context import TrainingContext
from worker.training.config import TrainConfig
from worker.training.data import TensorData
from worker.training.loop import EpochLoop, StepValues
from worker.training.optim import build_optimizer

EVAL_BATCH = 1024
PLL_SEED = 12345  # the same flipped units every epoch, so the estimates are comparable
# The classic recipe (Hinton 2010, section 4): SGD with momentum.
DEFAULT_OPTIMIZER = DEFAULT_OPTIMIZERS["reconstruct"].model_dump()  # one default, in the spec


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


class RBMTrainer(EpochLoop):

    def __init__(self, rbm: RBM, data: TensorData, config: TrainConfig, ctx: TrainingContext, optimizer: dict[str, Any] | None = None):
        device = torch.device(config.device)
        self.rbm = rbm.to(device)
        self.x_train = data.x_train.to(device).reshape(len(data.x_train), -1).float().clamp(0, 1)
        has_val = data.x_val is not None and len(data.x_val)
        self.x_eval = data.x_val.to(device).reshape(len(data.x_val), -1).float().clamp(0, 1) if has_val else self.x_train
        self.optimizer = build_optimizer(rbm, optimizer or DEFAULT_OPTIMIZER)
        super().__init__(config, ctx, model=self.rbm, optimizers=[self.optimizer], train_size=len(self.x_train))
        self.params = [rbm.weight, rbm.visible_bias, rbm.hidden_bias]
        self.sampling = torch.Generator(device=device)  # Gibbs sampling draws, checkpointed
        self.seen = 0
        self.error_sum = torch.zeros((), device=device)  # kept on the device, so the hot loop never synchronises

    @torch.no_grad()
    def start_fresh(self) -> None:
        self.sampling.manual_seed(self.config.seed + 1)  # a stream of its own, not the shuffle's
        # b_v = log(p / (1 - p)) for each unit's mean training activation p (Hinton 2010, 8.1):
        # the hidden units then start by modelling what the biases cannot.
        p = self.x_train.mean(0).clamp(0.01, 0.99)
        self.rbm.visible_bias.copy_(torch.log(p / (1 - p)))

    def train_step(self, idx: torch.Tensor) -> StepValues:
        with torch.no_grad():
            v0 = self.x_train.index_select(0, idx)
            *grads, error = cd_k_gradients(self.rbm, v0, self.rbm.k, self.sampling)
            for param, grad in zip(self.params, grads):
                param.grad = -grad  # CD estimates the log-likelihood's ascent direction; optimizers descend
        if self.config.grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip_norm)
        self.optimizer.step()
        self.seen += len(v0)
        self.error_sum += error * len(v0)
        return lambda: {"train_reconstruction_error": error.item()}

    def close_epoch(self) -> dict[str, float]:
        summary = {"train_reconstruction_error": self.error_sum.item() / max(self.seen, 1)}
        self.seen, self.error_sum = 0, torch.zeros((), device=self.device)
        return summary

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(PLL_SEED)
        return {
            "reconstruction_error": reconstruction_error(self.rbm, self.x_eval),
            "pseudo_log_likelihood": pseudo_log_likelihood(self.rbm, self.x_eval, generator),
        }

    def family_state(self) -> dict[str, Any]:
        return {"sampling_rng": self.sampling.get_state(), "seen": self.seen, "error_sum": self.error_sum.item()}

    def load_family_state(self, state: dict[str, Any]) -> None:
        self.sampling.set_state(state["sampling_rng"])
        self.seen = int(state["seen"])
        self.error_sum = torch.tensor(state["error_sum"], device=self.device)

"""Bernoulli restricted Boltzmann machine (binary visible and hidden units).

Energy E(v, h) = -v.b_v - h.b_h - v W h, with W of shape [visible, hidden]. Inputs are flattened
vectors in [0, 1] (grey levels are read as probabilities). ``forward`` returns the hidden units'
activation probabilities: the features an RBM gives when used as a transform.

Only the model's own math lives here; contrastive divergence and the update rule are in
``worker.training.rbm``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from models.registry import Architecture, InputSpec, register


@dataclass
class RBMParams:
    hidden: int = field(default=128, metadata={"ge": 2, "le": 8192, "description": "number of hidden units"})
    k: int = field(default=1, metadata={"ge": 1, "le": 50, "description": "Gibbs steps per contrastive-divergence update (CD-k)"})


class RBM(nn.Module):
    def __init__(self, visible: int, params: RBMParams):
        super().__init__()
        self.visible, self.hidden, self.k = visible, params.hidden, params.k
        # Small random weights and zero biases (Hinton 2010, "A practical guide", section 8)
        self.weight = nn.Parameter(torch.randn(visible, params.hidden) * 0.01)
        self.visible_bias = nn.Parameter(torch.zeros(visible))
        self.hidden_bias = nn.Parameter(torch.zeros(params.hidden))

    def _flat(self, v: torch.Tensor) -> torch.Tensor:
        return v.reshape(len(v), self.visible)

    def hidden_probs(self, v: torch.Tensor) -> torch.Tensor:
        """P(h_j = 1 | v) for every hidden unit, shape [N, hidden]."""
        return torch.sigmoid(self._flat(v) @ self.weight + self.hidden_bias)

    def visible_probs(self, h: torch.Tensor) -> torch.Tensor:
        """P(v_i = 1 | h) for every visible unit, shape [N, visible] (flat)."""
        return torch.sigmoid(h @ self.weight.t() + self.visible_bias)

    def sample_h(self, v: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.bernoulli(self.hidden_probs(v), generator=generator)

    def sample_v(self, h: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.bernoulli(self.visible_probs(h), generator=generator)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -v.b_v - sum_j softplus(b_h + v W)_j, shape [N]; lower means more probable."""
        v = self._flat(v)
        return -(v @ self.visible_bias) - F.softplus(v @ self.weight + self.hidden_bias).sum(1)

    def reconstruct(self, v: torch.Tensor) -> torch.Tensor:
        """One deterministic up-down pass (probabilities both ways), shape [N, visible]."""
        return self.visible_probs(self.hidden_probs(v))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.hidden_probs(v)


def _build(params: RBMParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    # num_classes is unused: an RBM models its input, it has no labels
    return RBM(math.prod(input_shape), params)


ARCHITECTURE = Architecture(
    name="rbm",
    description="Bernoulli restricted Boltzmann machine trained by contrastive divergence (CD-k); "
    "inputs are read as probabilities in [0, 1], the transform gives hidden-unit probabilities.",
    task="reconstruct",
    params_type=RBMParams,
    input=InputSpec(kind="vector"),
    example_input_shape=(64,),
    build_fn=_build,
)

register(ARCHITECTURE)

"""Multi-layer perceptron with a choice of activation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import nn

from models.activations import ACTIVATIONS, make_activation
from models.registry import Architecture, InputSpec, register


@dataclass
class MLPParams:
    hidden_sizes: list[int] = field(
        default_factory=lambda: [128, 64],
        metadata={"item_ge": 1, "item_le": 16384, "max_length": 16, "description": "width of each hidden layer"},
    )
    activation: str = field(default="relu", metadata={"choices": ACTIVATIONS})
    negative_slope: float = field(default=0.01, metadata={"ge": 0.0, "le": 1.0, "description": "for leaky_relu"})
    dropout: float = field(default=0.0, metadata={"ge": 0.0, "lt": 1.0})
    batch_norm: bool = field(default=False, metadata={"description": "BatchNorm1d after each hidden linear layer"})


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int, params: MLPParams):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for hidden in params.hidden_sizes:
            layers.append(nn.Linear(width, hidden))
            if params.batch_norm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(make_activation(params.activation, params.negative_slope))
            if params.dropout > 0:
                layers.append(nn.Dropout(params.dropout))
            width = hidden
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


def _build(params: MLPParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return MLP(math.prod(input_shape), num_classes, params)


register(
    Architecture(
        name="mlp",
        description="Fully-connected network: hidden layers with sigmoid, tanh, ReLU or Leaky ReLU, "
        "optional dropout and batch normalisation.",
        task="classify",
        params_type=MLPParams,
        input=InputSpec(kind="vector"),
        example_input_shape=(64,),
        build_fn=_build,
    )
)

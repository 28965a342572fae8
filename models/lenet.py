"""LeNet-5 as listed in the survey: conv 6@5x5, pool, conv 16@5x5, pool, 120, 84, classes.

Takes 1x32x32 images (LeCun et al. 1998 padded 28x28 digits to 32x32); the trainer resizes
other image sizes to that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from models.activations import ACTIVATIONS, make_activation
from models.registry import Architecture, ArchitectureError, InputSpec, register


@dataclass
class LeNet5Params:
    activation: str = field(default="relu", metadata={"choices": ACTIVATIONS})
    negative_slope: float = field(default=0.01, metadata={"ge": 0.0, "le": 1.0, "description": "for leaky_relu"})
    pooling: str = field(default="max", metadata={"choices": ("max", "avg")})


class LeNet5(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, params: LeNet5Params):
        super().__init__()
        pool = nn.MaxPool2d if params.pooling == "max" else nn.AvgPool2d

        def act() -> nn.Module:
            return make_activation(params.activation, params.negative_slope)

        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5), act(), pool(2),
            nn.Conv2d(6, 16, kernel_size=5), act(), pool(2),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120), act(),
            nn.Linear(120, 84), act(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def _build(params: LeNet5Params, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(input_shape) != 3 or tuple(input_shape[1:]) != (32, 32):
        raise ArchitectureError(f"lenet5 takes images of shape [C, 32, 32], got {list(input_shape)}")
    return LeNet5(input_shape[0], num_classes, params)


register(
    Architecture(
        name="lenet5",
        description="LeNet-5 (LeCun et al. 1998), the survey's listing: two 5x5 convolutions with pooling, "
        "then 120-84-classes fully connected. Input 32x32; other image sizes are resized.",
        task="classify",
        params_type=LeNet5Params,
        input=InputSpec(kind="image", size=(32, 32)),
        example_input_shape=(1, 32, 32),
        build_fn=_build,
    )
)

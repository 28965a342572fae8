"""AlexNet as listed in the survey: five convolutions with max pools, an adaptive average pool, and
two dropout fully-connected layers. ``width`` scales every layer; the small-input stem (3x3 stride
1 convolution, 2x2 pools) lets it train on 28x28 and 32x32 images on a CPU; the full stem
(11x11 stride 4) is the original for 224x224."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from models.activations import ACTIVATIONS, make_activation
from models.input_rules import image_stem
from models.registry import Architecture, InputSpec, register


@dataclass
class AlexNetParams:
    width: float = field(default=1.0, metadata={"ge": 0.0625, "le": 2.0, "description": "multiplies every layer's channels and units"})
    stem: str = field(default="auto", metadata={"choices": ("auto", "small", "full"), "description": "auto: small below 64x64 inputs"})
    activation: str = field(default="relu", metadata={"choices": ACTIVATIONS})
    negative_slope: float = field(default=0.01, metadata={"ge": 0.0, "le": 1.0})
    dropout: float = field(default=0.5, metadata={"ge": 0.0, "lt": 1.0})


def _c(channels: int, width: float) -> int:
    return max(4, int(round(channels * width)))


class AlexNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, params: AlexNetParams, small: bool):
        super().__init__()
        w = params.width

        def act() -> nn.Module:
            return make_activation(params.activation, params.negative_slope)

        c1, c2, c3, c4, c5 = (_c(c, w) for c in (64, 192, 384, 256, 256))
        if small:
            first = [nn.Conv2d(in_channels, c1, kernel_size=3, stride=1, padding=1), act(), nn.MaxPool2d(2)]
            pool = lambda: nn.MaxPool2d(2)  # noqa: E731
            pooled = (2, 2)
        else:
            first = [nn.Conv2d(in_channels, c1, kernel_size=11, stride=4, padding=2), act(), nn.MaxPool2d(3, stride=2)]
            pool = lambda: nn.MaxPool2d(3, stride=2)  # noqa: E731
            pooled = (6, 6)
        self.features = nn.Sequential(
            *first,
            nn.Conv2d(c1, c2, kernel_size=5, padding=2), act(), pool(),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1), act(),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1), act(),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1), act(), pool(),
            nn.AdaptiveAvgPool2d(pooled),
            nn.Flatten(),
        )
        hidden = _c(4096, w)
        self.classifier = nn.Sequential(
            nn.Dropout(params.dropout), nn.Linear(c5 * pooled[0] * pooled[1], hidden), act(),
            nn.Dropout(params.dropout), nn.Linear(hidden, hidden), act(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def _build(params: AlexNetParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    small = image_stem("alexnet", params.stem, input_shape, full_stem_min=63)
    return AlexNet(input_shape[0], num_classes, params, small)


register(
    Architecture(
        name="alexnet",
        description="AlexNet (Krizhevsky et al. 2012), the survey's listing: five convolutions, max pools, adaptive "
        "average pool, two dropout fully-connected layers; width multiplier; small-input stem below 64x64.",
        task="classify",
        params_type=AlexNetParams,
        input=InputSpec(kind="image"),
        example_input_shape=(3, 32, 32),
        build_fn=_build,
    )
)

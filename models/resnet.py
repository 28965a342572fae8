"""ResNet-18/34 (He et al. 2016) from basic blocks with identity or projection shortcuts and batch
normalisation. The small-input stem (3x3 stride 1, no max pool) is the usual one for 32x32."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from models.input_rules import image_stem
from models.registry import Architecture, InputSpec, register

LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


@dataclass
class ResNetParams:
    depth: int = field(default=18, metadata={"choices": (18, 34)})
    width: float = field(default=1.0, metadata={"ge": 0.0625, "le": 2.0, "description": "multiplies the 64-128-256-512 channels"})
    stem: str = field(default="auto", metadata={"choices": ("auto", "small", "full"), "description": "auto: small below 64x64 inputs"})


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = conv3x3(cout, cout), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        # Projection shortcut where the shape changes, identity elsewhere.
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout else nn.Identity()
        )

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, params: ResNetParams, small: bool):
        super().__init__()
        widths = [max(8, int(round(c * params.width))) for c in (64, 128, 256, 512)]
        if small:
            stem = [conv3x3(in_channels, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
        else:
            stem = [nn.Conv2d(in_channels, widths[0], kernel_size=7, stride=2, padding=3, bias=False),
                    nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1)]
        stages, cin = [], widths[0]
        for i, (cout, blocks) in enumerate(zip(widths, LAYERS[params.depth])):
            stages.append(self._make_layer(cin, cout, blocks, stride=1 if i == 0 else 2))
            cin = cout
        self.features = nn.Sequential(*stem, *stages, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)  # each residual branch starts as identity: trains faster and steadier

    @staticmethod
    def _make_layer(cin: int, cout: int, blocks: int, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(cin, cout, stride), *(BasicBlock(cout, cout, 1) for _ in range(blocks - 1)))

    def forward(self, x):
        return self.classifier(self.features(x))


def _build(params: ResNetParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    small = image_stem("resnet", params.stem, input_shape, full_stem_min=32)
    return ResNet(input_shape[0], num_classes, params, small)


register(
    Architecture(
        name="resnet",
        description="ResNet-18/34 (He et al. 2016): basic blocks, identity/projection shortcuts, batch normalisation; "
        "small-input stem for 32x32.",
        task="classify",
        params_type=ResNetParams,
        input=InputSpec(kind="image"),
        example_input_shape=(3, 32, 32),
        build_fn=_build,
    )
)

"""DCGAN for small images (after the PyTorch examples' dcgan/main.py, two stages instead of four).

Generator: latent -> linear projection to (2*width, H/4, W/4) -> two stride-2 transposed
convolutions with batch norm and ReLU -> Tanh, so images come out in [-1, 1]. Discriminator
mirrors it: two stride-2 convolutions with LeakyReLU (or ReLU) -> one real/fake logit.

``GAN.forward`` is the discriminator, so the registry's meta-device check sees logits of shape
[N, 1]. The generator draws in [-1, 1]; ``to_tanh_range`` and ``from_tanh_range`` map a channel's
data range onto that and back (training maps the data in, generation maps the images out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from models.registry import Architecture, ArchitectureError, InputSpec, register

LEAKY_SLOPE = 0.2  # DCGAN's discriminator slope
EPS = 1e-8


def to_tanh_range(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Linear map of [low, high] onto the generator's [-1, 1], clamped; a constant channel becomes -1."""
    return (2 * (x - low) / (high - low).clamp_min(EPS) - 1).clamp(-1, 1)


def from_tanh_range(images: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Generated images in [-1, 1] back onto the data's [low, high]."""
    return (images + 1) / 2 * (high - low) + low


@dataclass
class GANParams:
    latent_dim: int = field(default=32, metadata={"ge": 2, "le": 512, "description": "length of the noise vector"})
    width: int = field(default=32, metadata={"ge": 4, "le": 256, "description": "base channel count; the widest layer has twice this"})
    activation: str = field(default="leaky_relu", metadata={"choices": ("relu", "leaky_relu"), "description": "the discriminator's"})


def _init_dcgan(module: nn.Module) -> None:
    """DCGAN's initialisation: weights N(0, 0.02), batch-norm scales N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _upsample(in_channels: int, out_channels: int) -> nn.ConvTranspose2d:
    # kernel 4, stride 2, padding 1 doubles height and width exactly
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=False)


def _downsample(in_channels: int, out_channels: int, bias: bool) -> nn.Conv2d:
    # kernel 4, stride 2, padding 1 halves even height and width exactly
    return nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=bias)


class Generator(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], params: GANParams):
        super().__init__()
        channels, height, width = image_shape
        wide = 2 * params.width
        self.seed_shape = (wide, height // 4, width // 4)
        self.project = nn.Sequential(
            nn.Linear(params.latent_dim, math.prod(self.seed_shape), bias=False),
            nn.BatchNorm1d(math.prod(self.seed_shape)),
            nn.ReLU(),
        )
        self.upsample = nn.Sequential(
            _upsample(wide, params.width), nn.BatchNorm2d(params.width), nn.ReLU(),
            _upsample(params.width, channels), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(z).view(len(z), *self.seed_shape))


class Discriminator(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], params: GANParams):
        super().__init__()
        channels, height, width = image_shape
        wide = 2 * params.width

        def act() -> nn.Module:
            return nn.LeakyReLU(LEAKY_SLOPE) if params.activation == "leaky_relu" else nn.ReLU()

        # DCGAN leaves batch norm off the discriminator's first layer
        self.features = nn.Sequential(
            _downsample(channels, params.width, bias=True), act(),
            _downsample(params.width, wide, bias=False), nn.BatchNorm2d(wide), act(),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(wide * (height // 4) * (width // 4), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class GAN(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], params: GANParams):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.latent_dim = params.latent_dim
        self.generator = Generator(self.image_shape, params)
        self.discriminator = Discriminator(self.image_shape, params)
        self.apply(_init_dcgan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The discriminator's real-vs-generated logits, shape [N, 1] (positive means "real")."""
        return self.discriminator(x)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = self.generator.project[0].weight.device
        return torch.randn((n, self.latent_dim), generator=generator, device=device)

    def generate(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images of the data's shape in [-1, 1]; keeps autograd on, so training can use it.

        In train mode batch norm needs n > 1; call ``eval()`` first to draw single images.
        """
        return self.generator(self.sample_latent(n, generator))


def _build(params: GANParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    # num_classes is meaningless for a generative model; the discriminator always has one logit
    if len(input_shape) != 3 or input_shape[0] < 1 or any(side < 4 or side % 4 for side in input_shape[1:]):
        raise ArchitectureError(
            f"gan takes images of shape [C, H, W] with H and W divisible by 4, got {list(input_shape)}"
        )
    return GAN(input_shape, params)  # type: ignore[arg-type]


ARCHITECTURE = Architecture(
    name="gan",
    description="DCGAN (Radford et al. 2015) scaled for small images: a generator of two transposed "
    "convolutions from a noise vector and a mirrored convolutional discriminator. Height and width "
    "must be divisible by 4.",
    task="generate",
    params_type=GANParams,
    input=InputSpec(kind="image"),
    example_input_shape=(1, 28, 28),
    build_fn=_build,
)

register(ARCHITECTURE)

"""Self-attention sequence classifier (Vaswani et al. 2017): a transformer encoder with positional
encoding, padding masked by length, and attention pooling or a class token."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from models.input_rules import check_sequence_input
from models.registry import Architecture, ArchitectureError, InputSpec, register


@dataclass
class TransformerParams:
    d_model: int = field(default=64, metadata={"ge": 8, "le": 2048, "description": "model width; a multiple of heads"})
    heads: int = field(default=4, metadata={"ge": 1, "le": 32})
    layers: int = field(default=2, metadata={"ge": 1, "le": 24})
    feedforward: int = field(default=128, metadata={"ge": 8, "le": 16384})
    dropout: float = field(default=0.1, metadata={"ge": 0.0, "lt": 1.0})
    positional: str = field(default="sinusoidal", metadata={"choices": ("sinusoidal", "learned")})
    pooling: str = field(default="attention", metadata={"choices": ("attention", "cls")})


def sinusoidal_table(length: int, width: int) -> torch.Tensor:
    position = torch.arange(length).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, width, 2) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: width // 2])
    return table


class AttentionPooling(nn.Module):
    """A learned query attends over the valid positions: a weighted mean the model chooses."""

    def __init__(self, width: int):
        super().__init__()
        self.score = nn.Linear(width, 1)

    def forward(self, h: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        scores = self.score(h).squeeze(-1).masked_fill(padding, float("-inf"))
        return (torch.softmax(scores, dim=1).unsqueeze(-1) * h).sum(1)


class TransformerEncoderNet(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], vocab_size: int | None, p: TransformerParams):
        super().__init__()
        length = input_shape[0] + (1 if p.pooling == "cls" else 0)
        self.input = nn.Embedding(vocab_size, p.d_model, padding_idx=0) if vocab_size else nn.Linear(input_shape[1], p.d_model)
        if p.positional == "learned":
            self.position = nn.Parameter(torch.zeros(1, length, p.d_model))
            nn.init.normal_(self.position, std=0.02)
        else:
            self.register_buffer("position", sinusoidal_table(length, p.d_model).unsqueeze(0), persistent=False)
        self.cls = nn.Parameter(torch.zeros(1, 1, p.d_model)) if p.pooling == "cls" else None
        layer = nn.TransformerEncoderLayer(p.d_model, p.heads, p.feedforward, p.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, p.layers, enable_nested_tensor=False)
        self.pool = AttentionPooling(p.d_model) if p.pooling == "attention" else None
        self.norm = nn.LayerNorm(p.d_model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.input(x) * (math.sqrt(self.input.embedding_dim) if isinstance(self.input, nn.Embedding) else 1.0)
        padding = torch.arange(x.shape[1], device=x.device)[None, :] >= lengths.to(x.device)[:, None]
        if self.cls is not None:
            h = torch.cat([self.cls.expand(x.shape[0], -1, -1), h], dim=1)
            padding = torch.cat([torch.zeros_like(padding[:, :1]), padding], dim=1)
        h = self.encoder(h + self.position[:, : h.shape[1]], src_key_padding_mask=padding)
        pooled = h[:, 0] if self.cls is not None else self.pool(h, padding)
        return self.norm(pooled)


class TransformerClassifier(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, vocab_size: int | None, params: TransformerParams):
        super().__init__()
        self.features = TransformerEncoderNet(input_shape, vocab_size, params)
        self.classifier = nn.Linear(params.d_model, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)
        return self.classifier(self.features(x, lengths))


def _build(params: TransformerParams, input_shape: tuple[int, ...], num_classes: int, vocab_size: int | None = None) -> nn.Module:
    check_sequence_input("transformer", input_shape, vocab_size)
    if params.d_model % params.heads:
        raise ArchitectureError(f"d_model ({params.d_model}) must be a multiple of heads ({params.heads})")
    if params.d_model % 2:
        raise ArchitectureError("d_model must be even (sinusoidal positions pair sines and cosines)")
    return TransformerClassifier(input_shape, num_classes, vocab_size, params)


register(
    Architecture(
        name="transformer",
        description="Self-attention encoder: heads, layers, model width, sinusoidal or learned positions, padding "
        "masked by length, attention pooling or a class token.",
        task="classify",
        params_type=TransformerParams,
        input=InputSpec(kind="sequence"),
        example_input_shape=(20, 8),
        build_fn=_build,
    )
)

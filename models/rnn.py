"""Recurrent sequence classifiers: a plain RNN, LSTM (Hochreiter & Schmidhuber 1997) or GRU over
token ids (through an embedding) or float series, reading only each sequence's real length."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from models.input_rules import check_sequence_input
from models.registry import Architecture, InputSpec, register


@dataclass
class RNNParams:
    cell: str = field(default="lstm", metadata={"choices": ("rnn", "lstm", "gru")})
    hidden_size: int = field(default=64, metadata={"ge": 2, "le": 4096})
    num_layers: int = field(default=1, metadata={"ge": 1, "le": 8})
    bidirectional: bool = field(default=False)
    dropout: float = field(default=0.0, metadata={"ge": 0.0, "lt": 1.0, "description": "between stacked layers and before the head"})
    embedding_dim: int = field(default=32, metadata={"ge": 2, "le": 4096, "description": "for token inputs"})


class SequenceEncoder(nn.Module):
    """Embedding (tokens) + recurrent layers -> the final hidden state of each sequence."""

    def __init__(self, input_shape: tuple[int, ...], vocab_size: int | None, params: RNNParams):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, params.embedding_dim, padding_idx=0) if vocab_size else None
        features = params.embedding_dim if vocab_size else input_shape[1]
        cell = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[params.cell]
        self.rnn = cell(features, params.hidden_size, num_layers=params.num_layers, batch_first=True,
                        bidirectional=params.bidirectional, dropout=params.dropout if params.num_layers > 1 else 0.0)
        self.out_features = params.hidden_size * (2 if params.bidirectional else 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.embedding is not None:
            x = self.embedding(x)
        if x.device.type == "meta":  # shape checks: packing needs real lengths
            _, hidden = self.rnn(x)
        else:
            packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
            _, hidden = self.rnn(packed)
        if isinstance(hidden, tuple):  # LSTM: (h, c)
            hidden = hidden[0]
        last = hidden.view(self.rnn.num_layers, 2 if self.rnn.bidirectional else 1, x.shape[0], self.rnn.hidden_size)[-1]
        return last.transpose(0, 1).reshape(x.shape[0], -1)


class RNNClassifier(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, vocab_size: int | None, params: RNNParams):
        super().__init__()
        self.features = SequenceEncoder(input_shape, vocab_size, params)
        self.classifier = nn.Sequential(nn.Dropout(params.dropout), nn.Linear(self.features.out_features, num_classes))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
        return self.classifier(self.features(x, lengths))


def _build(params: RNNParams, input_shape: tuple[int, ...], num_classes: int, vocab_size: int | None = None) -> nn.Module:
    check_sequence_input("rnn", input_shape, vocab_size)
    return RNNClassifier(input_shape, num_classes, vocab_size, params)


register(
    Architecture(
        name="rnn",
        description="Recurrent classifier: RNN, LSTM or GRU cells, stacked and optionally bidirectional, over token "
        "ids (embedded) or float series; reads each sequence to its own length.",
        task="classify",
        params_type=RNNParams,
        input=InputSpec(kind="sequence"),
        example_input_shape=(20, 8),
        build_fn=_build,
    )
)

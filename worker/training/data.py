"""A dataset as training tensors: raw samples split stratified and seeded, the preprocessing the
model will carry fitted and applied, and contiguous tensors handed to the loop."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from app.core import preprocessing
from app.core.datasets.arrays import RawDataset

APPLY_ROWS = 8192  # preprocess in chunks: peak memory stays near the output tensor's size


@dataclass
class TensorData:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    lengths_train: torch.Tensor | None = None  # sequences: real lengths, passed to the network with each batch
    lengths_val: torch.Tensor | None = None
    lengths_test: torch.Tensor | None = None

    def to(self, device: torch.device) -> "TensorData":
        """Every tensor on ``device``: datasets are small next to device memory, so batches become device-side gathers."""
        return TensorData(*(t.to(device) if t is not None else None for t in (
            self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test,
            self.lengths_train, self.lengths_val, self.lengths_test)))


@dataclass
class PreparedData:
    tensors: TensorData
    preprocessing: preprocessing.Preprocessing
    class_names: list[str]


def _apply(pre: preprocessing.Preprocessing, raw: np.ndarray, idx: np.ndarray | None = None) -> torch.Tensor:
    n = len(raw) if idx is None else len(idx)
    out = torch.empty((n, *pre.input_shape), dtype=torch.long if pre.tokens else torch.float32)
    for start in range(0, n, APPLY_ROWS):
        rows = slice(start, start + APPLY_ROWS)
        chunk = raw[rows] if idx is None else raw[idx[rows]]
        out[rows] = torch.from_numpy(preprocessing.apply(pre, np.asarray(chunk)))
    return out


def prepare(
    raw: RawDataset, *, input_kind, input_size, input_channels, validation_fraction: float, seed: int,
    use_test_split: bool = True, standardize: bool = True,
) -> PreparedData:
    indices = np.arange(len(raw.x))
    if validation_fraction > 0:
        stratify = raw.y if raw.y is not None else None  # unlabelled sets (for generative models) split at random
        train_idx, val_idx = train_test_split(indices, test_size=validation_fraction, stratify=stratify, random_state=seed)
    else:
        train_idx, val_idx = indices, indices[:0]
    plan = preprocessing.plan(
        sample_shape=raw.info.sample_shape, value_max=raw.info.value_max, input_kind=input_kind, input_size=input_size,
        input_channels=input_channels, tokens=raw.info.tokens, vocab_size=raw.info.vocab_size,
    )
    fitted = preprocessing.fit(plan, raw.x[np.sort(train_idx)[:: max(1, len(train_idx) // 20000)]]) if standardize else plan
    # A copy: the labels may be a read-only memory map, which torch warns of (labels are small).
    y = torch.from_numpy(np.array(raw.y, dtype=np.int64)) if raw.y is not None else None

    lengths = torch.from_numpy(np.array(raw.lengths, dtype=np.int64)) if raw.lengths is not None else None

    def part(idx):
        return lengths[torch.from_numpy(idx)] if lengths is not None else None

    def labels(idx):
        return y[torch.from_numpy(idx)] if y is not None else None

    data = TensorData(_apply(fitted, raw.x, train_idx), labels(train_idx), lengths_train=part(train_idx))
    if len(val_idx):
        data.x_val, data.y_val, data.lengths_val = _apply(fitted, raw.x, val_idx), labels(val_idx), part(val_idx)
    if use_test_split and raw.x_test is not None and raw.y_test is not None:
        data.x_test, data.y_test = _apply(fitted, raw.x_test), torch.from_numpy(np.asarray(raw.y_test, dtype=np.int64))
        if raw.lengths_test is not None:
            data.lengths_test = torch.from_numpy(np.asarray(raw.lengths_test, dtype=np.int64))
    return PreparedData(data, fitted, list(raw.info.class_names))

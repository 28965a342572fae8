"""Datasets as tensors: load raw samples, split stratified and seeded, apply the preprocessing
the model will carry, and hand the Trainer contiguous float32 tensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from app import preprocessing
from app.datasets_catalog import DatasetInfo, builtin_dataset
from worker.trainer import TensorData


@dataclass
class RawDataset:
    info: DatasetInfo
    x: np.ndarray  # (N, *sample_shape) in raw units
    y: np.ndarray  # (N,) int64 class indices


def load_raw(ref: str) -> RawDataset:
    info = builtin_dataset(ref)
    if info is None:
        raise ValueError(f"unknown dataset {ref!r}")
    if ref == "builtin:digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return RawDataset(info, digits.images.astype(np.float32), digits.target.astype(np.int64))
    raise ValueError(f"no loader for {ref!r}")  # pragma: no cover - catalog and loaders are kept in step


@dataclass
class PreparedData:
    tensors: TensorData
    preprocessing: preprocessing.Preprocessing
    class_names: list[str]


def prepare(raw: RawDataset, *, input_kind, input_size, input_channels, validation_fraction: float, seed: int) -> PreparedData:
    indices = np.arange(len(raw.y))
    if validation_fraction > 0:
        train_idx, val_idx = train_test_split(indices, test_size=validation_fraction, stratify=raw.y, random_state=seed)
    else:
        train_idx, val_idx = indices, indices[:0]
    plan = preprocessing.plan(
        sample_shape=raw.info.sample_shape, value_max=raw.info.value_max,
        input_kind=input_kind, input_size=input_size, input_channels=input_channels,
    )
    fitted = preprocessing.fit(plan, raw.x[train_idx])

    def tensors(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(preprocessing.apply(fitted, raw.x[idx])), torch.from_numpy(raw.y[idx])

    x_train, y_train = tensors(train_idx)
    x_val, y_val = tensors(val_idx) if len(val_idx) else (None, None)
    return PreparedData(TensorData(x_train, y_train, x_val, y_val), fitted, list(raw.info.class_names))

"""Datasets as tensors: load raw samples (built-in, or an upload's memory-mapped arrays), split
stratified and seeded, apply the preprocessing the model will carry, and hand the Trainer
contiguous float32 tensors."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from app import preprocessing
from app.artifacts import ArtifactStore
from app.datasets_catalog import DatasetInfo, builtin_dataset
from app.services.datasets import dataset_prefix
from worker.trainer import TensorData

APPLY_ROWS = 8192  # preprocess in chunks: peak memory stays near the output tensor's size


@dataclass
class RawDataset:
    info: DatasetInfo
    x: np.ndarray  # (N, *sample_shape) in raw units; a memory map for uploads
    y: np.ndarray  # (N,) int64 class indices
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    lengths: np.ndarray | None = None  # sequences: the real length of each padded sample
    lengths_test: np.ndarray | None = None


def parity(info: DatasetInfo, seed: int = 0) -> RawDataset:
    """Bit sequences of random length (half to full), label = parity of the 1s. Fixed seed: the
    same built-in dataset every time."""
    rng = np.random.default_rng(seed)
    n, length = info.num_samples, info.sample_shape[0]
    lengths = rng.integers(max(1, length // 2), length + 1, size=n)
    bits = rng.integers(0, 2, size=(n, length))
    valid = np.arange(length)[None, :] < lengths[:, None]
    x = np.where(valid, bits + 1, 0).astype(np.int64)  # ids 1/2 for bits 0/1; 0 pads
    y = (np.where(valid, bits, 0).sum(1) % 2).astype(np.int64)
    return RawDataset(info, x, y, lengths=lengths.astype(np.int64))


def load_raw(ref: str, store: ArtifactStore | None = None) -> RawDataset:
    info = builtin_dataset(ref)
    if info is not None:
        if ref == "builtin:digits":
            from sklearn.datasets import load_digits

            digits = load_digits()
            return RawDataset(info, digits.images.astype(np.float32), digits.target.astype(np.int64))
        if ref.startswith("builtin:parity"):
            return parity(info)
        raise ValueError(f"no loader for {ref!r}")  # pragma: no cover - catalog and loaders are kept in step
    if store is None:
        raise ValueError(f"dataset {ref!r} needs the artifact store")
    folder = store.path(dataset_prefix(ref))
    meta = json.loads((folder / "meta.json").read_text())
    info = DatasetInfo(
        ref=ref, description=ref, kind=meta["kind"], sample_shape=tuple(meta["sample_shape"]), value_max=meta["value_max"],
        class_names=tuple(meta["class_names"]), num_samples=meta["num_samples"], task=meta["task"],
        class_counts=tuple(meta["class_counts"]), has_test_split=meta["num_test_samples"] > 0,
        vocab_size=meta.get("vocab_size"),
    )

    def load(split: str, part: str) -> np.ndarray | None:
        name = meta["files"].get(split, {}).get(part)
        return np.load(folder / name, mmap_mode="r") if name else None

    return RawDataset(info, load("train", "x"), load("train", "y"), load("test", "x"), load("test", "y"),
                      lengths=load("train", "lengths"), lengths_test=load("test", "lengths"))


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
    y = torch.from_numpy(np.asarray(raw.y, dtype=np.int64)) if raw.y is not None else None

    lengths = torch.from_numpy(np.asarray(raw.lengths, dtype=np.int64)) if raw.lengths is not None else None

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

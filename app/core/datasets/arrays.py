"""A dataset's samples as numpy arrays in raw units: built-ins made on the spot (nothing is
downloaded), uploads memory-mapped from the arrays ingest wrote. Read by training, batch
inference and the preview alike."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from app.core.artifacts import layout
from app.core.artifacts.store import ArtifactStore
from app.core.datasets.catalog import DatasetInfo, builtin_dataset


@dataclass
class RawDataset:
    info: DatasetInfo
    x: np.ndarray  # (N, *sample_shape) in raw units; a memory map for uploads
    y: np.ndarray  # (N,) int64 class indices
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    lengths: np.ndarray | None = None  # sequences: the real length of each padded sample
    lengths_test: np.ndarray | None = None

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Samples, labels and lengths of ``train``, ``test`` or ``all`` (train then test)."""
        if name == "train":
            return self.x, self.y, self.lengths
        if name == "test":
            return self.x_test, self.y_test, self.lengths_test
        if self.x_test is None:
            return self.x, self.y, self.lengths
        y = np.concatenate([self.y, self.y_test]) if self.y is not None and self.y_test is not None else self.y
        lengths = self.lengths if self.lengths is None or self.lengths_test is None else np.concatenate([self.lengths, self.lengths_test])
        return np.concatenate([self.x, self.x_test]), y, lengths


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
    folder = store.local_folder(layout.dataset_prefix(ref))
    meta = json.loads((folder / layout.DATASET_META).read_text())
    info = DatasetInfo(
        ref=ref, description=ref, kind=meta["kind"], sample_shape=tuple(meta["sample_shape"]), value_max=meta["value_max"],
        class_names=tuple(meta["class_names"]), num_samples=meta["num_samples"], task=meta["task"],
        class_counts=tuple(meta["class_counts"]), has_test_split=meta["num_test_samples"] > 0,
        num_test_samples=meta["num_test_samples"],
        vocab_size=meta.get("vocab_size"),
    )

    def load(split: str, part: str) -> np.ndarray | None:
        name = meta["files"].get(split, {}).get(part)
        return np.load(folder / name, mmap_mode="r") if name else None

    return RawDataset(info, load("train", "x"), load("train", "y"), load("test", "x"), load("test", "y"),
                      lengths=load("train", "lengths"), lengths_test=load("test", "lengths"))

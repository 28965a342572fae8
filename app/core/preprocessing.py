"""How raw samples become network input, as data (recorded with the model) and as numpy code
(used by the trainer once per dataset and by predict per request, so both apply the same thing).

Order: scale to [0, 1] -> image layout (C, H, W) -> bilinear resize -> per-channel standardise ->
flatten for vector networks. Sequences: token ids pass through untouched (int64); float series
(T, F) are standardised per feature. An image (H, W) fed to a sequence network is read row by
row: H time steps of W features. The resize matches ``torch.nn.functional.interpolate(mode="bilinear",
align_corners=False)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class Preprocessing:
    sample_shape: tuple[int, ...]
    scale: float
    layout: Literal["image", "vector", "sequence"]
    input_shape: tuple[int, ...]
    resize: tuple[int, int] | None = None
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())
    tokens: bool = False  # sequence of token ids (embedded by the network), not of values
    vocab_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocessing":
        return cls(
            sample_shape=tuple(data["sample_shape"]),
            scale=float(data["scale"]),
            layout=data["layout"],
            input_shape=tuple(data["input_shape"]),
            resize=tuple(data["resize"]) if data.get("resize") else None,
            mean=tuple(data.get("mean", ())),
            std=tuple(data.get("std", ())),
            tokens=bool(data.get("tokens", False)),
            vocab_size=data.get("vocab_size"),
        )


# How per-channel (images) or per-feature (vectors, series) mean and std broadcast over a batch.
STATS_SHAPE = {"vector": (1, -1), "sequence": (1, 1, -1), "image": (1, -1, 1, 1)}


class IncompatibleInput(ValueError):
    """The dataset's samples cannot be adapted to what the network takes."""


def image_chw(sample_shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    if len(sample_shape) == 2:
        return (1, *sample_shape)
    if len(sample_shape) == 3:
        return tuple(sample_shape)  # type: ignore[return-value]
    return None


def plan(
    *,
    sample_shape: tuple[int, ...],
    value_max: float,
    input_kind: Literal["image", "vector", "sequence"],
    input_size: tuple[int, int] | None = None,
    input_channels: int | None = None,
    tokens: bool = False,
    vocab_size: int | None = None,
) -> Preprocessing:
    """The preprocessing for a dataset and a network's input spec, before statistics are fitted.
    ``tokens``: the samples are token-id sequences (T,) with ids below ``vocab_size``."""
    if input_kind == "sequence":
        if tokens:
            return Preprocessing(sample_shape, 1.0, "sequence", tuple(sample_shape), tokens=True, vocab_size=vocab_size)
        if len(sample_shape) == 2:
            return Preprocessing(sample_shape, 1.0 / value_max if value_max > 0 else 1.0, "sequence", tuple(sample_shape))
        raise IncompatibleInput(f"the network takes sequences (T, F) or token ids (T,), but samples have shape {list(sample_shape)}")
    if tokens:
        raise IncompatibleInput(f"the network takes {input_kind}s, but the samples are token-id sequences")
    scale = 1.0 / value_max if value_max > 0 else 1.0
    if input_kind == "vector":
        return Preprocessing(sample_shape, scale, "vector", (int(np.prod(sample_shape)),))
    chw = image_chw(sample_shape)
    if chw is None:
        raise IncompatibleInput(f"the network takes images, but samples have shape {list(sample_shape)}")
    channels, height, width = chw
    if input_channels is not None and channels != input_channels:
        raise IncompatibleInput(f"the network takes {input_channels}-channel images, samples have {channels}")
    resize = tuple(input_size) if input_size and tuple(input_size) != (height, width) else None
    out_hw = resize or (height, width)
    return Preprocessing(sample_shape, scale, "image", (channels, *out_hw), resize=resize)


@lru_cache(maxsize=64)
def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Row i holds the bilinear weights of output pixel i over the input pixels (align_corners=False)."""
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, None)
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    np.add.at(weights, (np.arange(n_out), lo), 1.0 - frac)
    np.add.at(weights, (np.arange(n_out), hi), frac)
    weights = weights.astype(np.float32)
    weights.flags.writeable = False  # shared by every call through the cache
    return weights


def _unnormalised(pre: Preprocessing, raw: np.ndarray) -> np.ndarray:
    x = np.asarray(raw, dtype=np.float32) * np.float32(pre.scale)
    if pre.layout == "sequence":
        return x.reshape(len(x), *pre.input_shape)
    if pre.layout == "vector":
        return x.reshape(len(x), -1)
    x = x.reshape(len(x), *image_chw(pre.sample_shape))
    if pre.resize is not None:
        rows = resize_matrix(x.shape[2], pre.resize[0])
        cols = resize_matrix(x.shape[3], pre.resize[1])
        # Two matmuls, not einsum: einsum plans its path on every call, which costs more than
        # the arithmetic on a predict request's one sample.
        x = np.matmul(np.matmul(rows, x), cols.T)
    return np.ascontiguousarray(x, dtype=np.float32)


def fit(pre: Preprocessing, raw_train: np.ndarray) -> Preprocessing:
    """Fix mean and std from the training split: per channel for images, per feature for vectors."""
    if pre.tokens:
        return pre
    x = _unnormalised(pre, raw_train).astype(np.float64)
    axes = {"vector": (0,), "sequence": (0, 1), "image": (0, 2, 3)}[pre.layout]
    mean = x.mean(axis=axes)
    std = x.std(axis=axes)
    std = np.where(std < 1e-8, 1.0, std)
    return replace(pre, mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std))


def apply(pre: Preprocessing, raw: np.ndarray) -> np.ndarray:
    """Raw samples (N, *sample_shape) -> network input (N, *input_shape): float32, or int64 token ids."""
    if pre.tokens:
        return np.asarray(raw, dtype=np.int64).reshape(len(raw), *pre.input_shape)
    x = _unnormalised(pre, raw)
    if pre.mean:
        mean = np.asarray(pre.mean, dtype=np.float32).reshape(STATS_SHAPE[pre.layout])
        std = np.asarray(pre.std, dtype=np.float32).reshape(STATS_SHAPE[pre.layout])
        x = (x - mean) / std
    return x.reshape(len(x), *pre.input_shape)

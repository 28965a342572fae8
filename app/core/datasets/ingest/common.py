"""What every format shares: limits, errors, on-disk array writers, label and value checks, stats."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np

from app.core.artifacts import layout

CHUNK = 1 << 20


class IngestError(ValueError):
    """Bad input. ``status`` 413 for size limits, 422 otherwise; ``file`` names the culprit."""

    def __init__(self, message: str, *, file: str | None = None, status: int = 422):
        super().__init__(f"{file}: {message}" if file else message)
        self.file = file
        self.status = status


@dataclass(frozen=True)
class IngestLimits:
    max_uncompressed_bytes: int = 4 << 30
    max_zip_entries: int = 200_000
    max_compression_ratio: float = 200.0
    max_image_pixels: int = 4096 * 4096
    min_samples_per_class: int = 2


@dataclass
class Upload:
    filename: str
    file: IO[bytes]  # positioned at 0; on disk (FastAPI spools uploads past 1 MiB)

    def sha256(self) -> str:
        digest = hashlib.sha256()
        self.file.seek(0)
        while chunk := self.file.read(CHUNK):
            digest.update(chunk)
        self.file.seek(0)
        return digest.hexdigest()


class ArrayOut:
    """A ``.npy`` file of known shape, written in order, chunk by chunk, with plain writes: no
    memory map, so the converted data never sits in the server's resident memory."""

    def __init__(self, path: Path, dtype, shape: tuple[int, ...], limits: IngestLimits, file: str | None = None):
        self.dtype = np.dtype(dtype)
        nbytes = int(self.dtype.itemsize * math.prod(shape))
        if nbytes > limits.max_uncompressed_bytes:
            raise IngestError(f"would hold {nbytes} bytes uncompressed, over the limit of {limits.max_uncompressed_bytes}", file=file, status=413)
        self.path = path
        self.shape = tuple(shape)
        self.filled = 0
        self._file = open(path, "wb")
        np.lib.format.write_array_header_1_0(
            self._file, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        )

    def write(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        assert rows.shape[1:] == self.shape[1:] and self.filled + len(rows) <= self.shape[0]
        self._file.write(rows.tobytes())
        self.filled += len(rows)

    def close(self) -> None:
        self._file.close()
        assert self.filled == self.shape[0], f"{self.path.name}: wrote {self.filled} of {self.shape[0]} rows"


def iter_rows(path: Path, max_bytes: int = 2 * CHUNK):
    """Yields (first_row, rows) of a ``.npy`` file with plain reads, about ``max_bytes`` (as float64) at a time."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(f)
        per_row = math.prod(shape[1:])
        rows = max(1, max_bytes // max(per_row * 8, 1))
        for start in range(0, shape[0], rows):
            n = min(rows, shape[0] - start)
            yield start, np.fromfile(f, dtype=dtype, count=n * per_row).reshape(n, *shape[1:])


def rewrite(path: Path, transform: Callable[[np.ndarray], np.ndarray]) -> None:
    """Replaces a ``.npy`` file with a transformed copy (never writing over a memory map of itself)."""
    result = np.array(transform(np.load(path)), copy=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, result)
    tmp.replace(path)


def read_exact(stream: IO[bytes], n: int, file: str, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise IngestError(f"truncated: expected {n} bytes of {what}, got {len(data)}", file=file)
    return data


# --- the description of a converted dataset ------------------------------------------------------


@dataclass
class Split:
    x: Path
    y: Path | None
    lengths: Path | None = None


@dataclass
class Converted:
    """What a format module produced, before the shared checks."""

    kind: str  # image | tabular | sequence
    train: Split
    test: Split | None = None
    class_names: list[str] | None = None  # given by the data (string labels, a class folder), else derived
    value_max: float | None = None
    task: str = "classification"
    extra: dict[str, Any] = field(default_factory=dict)


def check_finite(path: Path, file: str) -> None:
    if np.load(path, mmap_mode="r").dtype.kind != "f":
        return
    for first, chunk in iter_rows(path):
        if not np.isfinite(chunk).all():
            row = first + int(np.argwhere(~np.isfinite(chunk.reshape(len(chunk), -1)))[0][0])
            raise IngestError(f"sample {row} contains NaN or infinity", file=file)


def _stats(path: Path, kind: str) -> dict[str, list[float]]:
    """Per-channel (images) or per-feature (tabular, float series) mean and std, in raw units."""
    ndim = np.load(path, mmap_mode="r").ndim
    axes_channel = 1 if kind == "image" and ndim == 4 else None
    count = 0
    sums = sq = None
    for _, chunk in iter_rows(path):
        c = chunk.astype(np.float64)
        if kind == "image":
            c = c.reshape(len(c), -1, int(np.prod(c.shape[-2:]))) if axes_channel else c.reshape(len(c), 1, -1)
            s, q, n = c.sum(axis=(0, 2)), (c * c).sum(axis=(0, 2)), c.shape[0] * c.shape[2]
        else:
            c = c.reshape(-1, c.shape[-1]) if c.ndim > 1 else c.reshape(-1, 1)
            s, q, n = c.sum(axis=0), (c * c).sum(axis=0), c.shape[0]
        sums = s if sums is None else sums + s
        sq = q if sq is None else sq + q
        count += n
    if sums is None:
        return {"mean": [], "std": []}
    mean = sums / count
    std = np.sqrt(np.maximum(sq / count - mean * mean, 0.0))
    return {"mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in std]}


def finish(converted: Converted, uploads: list[Upload], out_dir: Path, limits: IngestLimits, fmt: str) -> dict[str, Any]:
    """Shared checks (finite values, label range, class sizes) and the dataset's description."""
    names = ", ".join(u.filename for u in uploads)
    splits = {"train": converted.train} | ({"test": converted.test} if converted.test else {})
    for split in splits.values():
        check_finite(split.x, names)
    x = np.load(converted.train.x, mmap_mode="r")
    description: dict[str, Any] = {
        "format": fmt,
        "kind": converted.kind,
        "task": converted.task,
        "num_samples": int(len(x)),
        "num_test_samples": int(len(np.load(converted.test.x, mmap_mode="r"))) if converted.test else 0,
        "sample_shape": [int(d) for d in x.shape[1:]],
        "dtype": str(x.dtype),
        "stats": _stats(converted.train.x, converted.kind) if converted.kind != "sequence" or x.dtype.kind == "f" else {"mean": [], "std": []},
        "value_max": converted.value_max if converted.value_max is not None else _value_max(converted.train.x),
        **converted.extra,
    }
    if converted.task == "classification":
        description |= _check_labels(converted, splits, limits, names)
    else:
        description |= {"num_classes": 0, "class_names": [], "class_counts": []}
    description["files"] = {
        name: {"x": s.x.name, "y": s.y.name if s.y else None, "lengths": s.lengths.name if s.lengths else None} for name, s in splits.items()
    }
    description["size_bytes"] = sum(p.stat().st_size for p in out_dir.iterdir() if p.is_file())
    description["sha256"] = _upload_hash(uploads)
    (out_dir / layout.DATASET_META).write_text(json.dumps(description, indent=2))
    return description


def _value_max(path: Path) -> float:
    if np.load(path, mmap_mode="r").dtype == np.uint8:
        return 255.0
    peak = 0.0
    for _, chunk in iter_rows(path):
        peak = max(peak, float(np.abs(chunk).max(initial=0.0)))
    return peak if peak > 0 else 1.0


def _check_labels(converted: Converted, splits: dict[str, Split], limits: IngestLimits, names: str) -> dict[str, Any]:
    ys = {}
    for split_name, split in splits.items():
        if split.y is None:
            raise IngestError(f"the {split_name} split has no labels", file=names)
        y = np.load(split.y, mmap_mode="r")
        if y.dtype.kind not in "iu":
            raise IngestError(f"labels must be integers (class indices), got {y.dtype}", file=names)
        if len(y) and int(y.min()) < 0:
            raise IngestError(f"label {int(y.min())} out of range: labels are class indices from 0", file=names)
        ys[split_name] = y
    num_classes = len(converted.class_names) if converted.class_names else int(ys["train"].max()) + 1
    class_names = converted.class_names or [str(i) for i in range(num_classes)]
    for split_name, y in ys.items():
        if len(y) and int(y.max()) >= num_classes:
            raise IngestError(f"label {int(y.max())} in the {split_name} split is out of range for {num_classes} classes", file=names)
    counts = np.bincount(ys["train"], minlength=num_classes)
    too_few = [class_names[i] for i, c in enumerate(counts) if c < limits.min_samples_per_class]
    if too_few:
        raise IngestError(
            f"class {too_few[0]!r} has {int(counts[class_names.index(too_few[0])])} training samples; "
            f"every class needs at least {limits.min_samples_per_class} for a stratified split",
            file=names,
        )
    return {"num_classes": num_classes, "class_names": class_names, "class_counts": [int(c) for c in counts]}


def _upload_hash(uploads: list[Upload]) -> str:
    """The sha256 of the file for one file; for several, of their sha256 digests in name order."""
    digests = sorted((u.filename, u.sha256()) for u in uploads)
    if len(digests) == 1:
        return digests[0][1]
    return hashlib.sha256("".join(d for _, d in digests).encode()).hexdigest()

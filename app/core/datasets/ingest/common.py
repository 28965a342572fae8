"""What every format shares: limits, errors, on-disk array writers, label and value checks, stats."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable

import numpy as np

from app.core.artifacts import layout

if TYPE_CHECKING:
    from app.core.settings import Settings

CHUNK = 1 << 20


class IngestError(ValueError):
    """Bad input. ``status`` 413 for size limits, 422 otherwise; ``file`` names the culprit."""

    def __init__(self, message: str, *, file: str | None = None, status: int = 422):
        super().__init__(f"{file}: {message}" if file else message)
        self.file = file
        self.status = status


@dataclass(frozen=True)
class IngestLimits:
    """Bounds on the work an upload may ask for, each a KILN_* setting named in the error it gives."""

    max_uncompressed_bytes: int = 4 << 30  # all the converted arrays together (KILN_MAX_UNCOMPRESSED_BYTES)
    max_zip_entries: int = 200_000  # KILN_MAX_ZIP_ENTRIES
    max_compression_ratio: float = 200.0  # KILN_MAX_COMPRESSION_RATIO, for ZIP entries and gzip'd IDX
    max_image_pixels: int = 4096 * 4096
    min_samples_per_class: int = 2
    max_classes: int = 10_000  # KILN_MAX_CLASSES
    max_sample_elements: int = 4_194_304  # KILN_MAX_SAMPLE_ELEMENTS: values in one sample (a 2048x2048 image)
    max_csv_columns: int = 10_000  # KILN_MAX_CSV_COLUMNS

    @classmethod
    def of(cls, settings: Settings) -> IngestLimits:
        return cls(
            max_uncompressed_bytes=settings.max_uncompressed_bytes, max_zip_entries=settings.max_zip_entries,
            max_compression_ratio=settings.max_compression_ratio, max_classes=settings.max_classes,
            max_sample_elements=settings.max_sample_elements, max_csv_columns=settings.max_csv_columns,
        )

    def too_big(self, what: str, value: int, limit: int, setting: str, file: str | None = None, status: int = 413) -> "IngestError":
        return IngestError(f"{what} is {value}, over the limit of {limit} ({setting})", file=file, status=status)


MAX_DIMS = 4  # a sample has at most 3 dimensions (channels, height, width)


def check_shape(shape: tuple[int, ...], limits: IngestLimits, what: str, file: str | None) -> None:
    """A declared array shape, before anything is read: rows of at least one value, each bounded.
    An empty dimension would make rows of zero bytes, which no byte limit bounds."""
    if not 1 <= len(shape) <= MAX_DIMS:
        raise IngestError(f"{what} has {len(shape)} dimensions; one sample per row and at most {MAX_DIMS} in all", file=file)
    if any(d < 1 for d in shape[1:]) or shape[0] < 0:
        raise IngestError(f"{what} has shape {list(shape)}: every dimension of a sample must be at least 1", file=file)
    per_sample = math.prod(shape[1:])
    if per_sample > limits.max_sample_elements:
        raise limits.too_big(f"one sample of {what} (shape {list(shape[1:])})", per_sample, limits.max_sample_elements,
                             "KILN_MAX_SAMPLE_ELEMENTS", file)


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


def _check_budget(path: Path, nbytes: int, limits: IngestLimits, file: str | None) -> None:
    """The converted arrays of one upload together (all in one folder) stay under KILN_MAX_UNCOMPRESSED_BYTES."""
    others = sum(p.stat().st_size for p in path.parent.iterdir() if p.is_file() and p != path)
    if others + nbytes > limits.max_uncompressed_bytes:
        raise limits.too_big("the converted dataset's size in bytes", others + nbytes, limits.max_uncompressed_bytes,
                             "KILN_MAX_UNCOMPRESSED_BYTES", file)


class ArrayOut:
    """A ``.npy`` file of known shape, written in order, chunk by chunk, with plain writes: no
    memory map, so the converted data never sits in the server's resident memory."""

    def __init__(self, path: Path, dtype, shape: tuple[int, ...], limits: IngestLimits, file: str | None = None):
        self.dtype = np.dtype(dtype)
        check_shape(tuple(shape), limits, path.stem, file)
        _check_budget(path, int(self.dtype.itemsize * math.prod(shape)), limits, file)
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


class GrowingArrayOut:
    """A ``.npy`` file whose row count is known only at the end (CSV): rows go to a raw file as they
    come, the byte budget checked as it grows; ``close`` writes the header, then the rows after it."""

    def __init__(self, path: Path, dtype, row_shape: tuple[int, ...], limits: IngestLimits, file: str | None = None):
        self.path, self.dtype, self.row_shape, self.limits, self.file = path, np.dtype(dtype), tuple(row_shape), limits, file
        check_shape((0, *self.row_shape), limits, path.stem, file)
        self.row_bytes = self.dtype.itemsize * math.prod(self.row_shape)
        self.rows = 0
        self._raw_path = path.with_name(f".{path.name}.raw")
        self._raw = open(self._raw_path, "wb")

    def write(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        assert rows.shape[1:] == self.row_shape
        _check_budget(self._raw_path, (self.rows + len(rows)) * self.row_bytes, self.limits, self.file)
        self._raw.write(rows.tobytes())
        self.rows += len(rows)

    def close(self) -> None:
        self._raw.close()
        with open(self.path, "wb") as out, open(self._raw_path, "rb") as raw:
            header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (self.rows, *self.row_shape)}
            np.lib.format.write_array_header_1_0(out, header)
            while chunk := raw.read(CHUNK):
                out.write(chunk)
        self._raw_path.unlink()


def array_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(f)
    return tuple(shape), dtype


def iter_rows(path: Path, max_bytes: int = 2 * CHUNK):
    """Yields (first_row, rows) of a ``.npy`` file with plain reads, about ``max_bytes`` (as float64)
    at a time; a single row larger than that (bounded by KILN_MAX_SAMPLE_ELEMENTS) comes alone."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(f)
        per_row = math.prod(shape[1:])
        rows = max(1, max_bytes // max(per_row * 8, 1))
        for start in range(0, shape[0], rows):
            n = min(rows, shape[0] - start)
            yield start, np.fromfile(f, dtype=dtype, count=n * per_row).reshape(n, *shape[1:])


def rewrite(path: Path, transform: Callable[[np.ndarray], np.ndarray], limits: IngestLimits, file: str | None = None) -> None:
    """Replaces a ``.npy`` file with a transformed copy, chunk by chunk (``transform`` maps rows to
    rows: a cast, a moved axis, labels to indices), the result's size checked before it is written."""
    shape, dtype = array_header(path)
    tmp = path.with_name(f".{path.stem}.tmp.npy")
    probe = np.asarray(transform(np.zeros((0, *shape[1:]), dtype=dtype)))
    out = ArrayOut(tmp, probe.dtype, (shape[0], *probe.shape[1:]), limits, file)
    try:
        for _, rows in iter_rows(path):
            out.write(transform(rows))
        out.close()
    except BaseException:
        out._file.close()
        tmp.unlink(missing_ok=True)
        raise
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
    if array_header(path)[1].kind != "f":
        return
    for first, chunk in iter_rows(path):
        if not np.isfinite(chunk).all():
            row = first + int(np.argwhere(~np.isfinite(chunk.reshape(len(chunk), -1)))[0][0])
            raise IngestError(f"sample {row} contains NaN or infinity", file=file)


def _stats(path: Path, kind: str) -> dict[str, list[float]]:
    """Per-channel (images) or per-feature (tabular, float series) mean and std, in raw units."""
    ndim = len(array_header(path)[0])
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
    shape, dtype = array_header(converted.train.x)
    description: dict[str, Any] = {
        "format": fmt,
        "kind": converted.kind,
        "task": converted.task,
        "num_samples": int(shape[0]),
        "num_test_samples": int(array_header(converted.test.x)[0][0]) if converted.test else 0,
        "sample_shape": [int(d) for d in shape[1:]],
        "dtype": str(dtype),
        "stats": _stats(converted.train.x, converted.kind) if converted.kind != "sequence" or dtype.kind == "f" else {"mean": [], "std": []},
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
    if array_header(path)[1] == np.uint8:
        return 255.0
    peak = 0.0
    for _, chunk in iter_rows(path):
        peak = max(peak, float(np.abs(chunk).max(initial=0.0)))
    return peak if peak > 0 else 1.0


def extremes(path: Path) -> tuple[float, float] | None:
    """The smallest and largest value of an array, read in chunks; None for an empty one."""
    low = high = None
    for _, chunk in iter_rows(path):
        if chunk.size:
            low = chunk.min() if low is None else min(low, chunk.min())
            high = chunk.max() if high is None else max(high, chunk.max())
    return None if low is None else (low, high)


def distinct(path: Path, limits: IngestLimits, file: str | None) -> set:
    """The distinct values of a label array, read in chunks; refused past KILN_MAX_CLASSES."""
    seen: set = set()
    for _, chunk in iter_rows(path):
        seen.update(np.unique(chunk).tolist())
        if len(seen) > limits.max_classes:
            raise limits.too_big("the number of distinct labels", len(seen), limits.max_classes, "KILN_MAX_CLASSES", file, status=422)
    return seen


def _check_labels(converted: Converted, splits: dict[str, Split], limits: IngestLimits, names: str) -> dict[str, Any]:
    """Integer labels are class indices: their range, checked in chunks before any class is named."""
    ranges = {}
    for split_name, split in splits.items():
        if split.y is None:
            raise IngestError(f"the {split_name} split has no labels", file=names)
        _, dtype = array_header(split.y)
        if dtype.kind not in "iu":
            raise IngestError(f"labels must be integers (class indices), got {dtype}", file=names)
        ranges[split_name] = extremes(split.y)
        if ranges[split_name] and int(ranges[split_name][0]) < 0:
            raise IngestError(f"label {int(ranges[split_name][0])} out of range: labels are class indices from 0", file=names)
    if converted.class_names:
        num_classes = len(converted.class_names)
    else:
        num_classes = int(ranges["train"][1]) + 1 if ranges["train"] else 0
        if num_classes > limits.max_classes:  # before a name is made for each of them
            raise limits.too_big(f"the number of classes (labels are read as classes 0..{num_classes - 1})", num_classes,
                                 limits.max_classes, "KILN_MAX_CLASSES", names, status=422)
    class_names = converted.class_names or [str(i) for i in range(num_classes)]
    for split_name, bounds in ranges.items():
        if bounds and int(bounds[1]) >= num_classes:
            raise IngestError(f"label {int(bounds[1])} in the {split_name} split is out of range for {num_classes} classes", file=names)
    counts = np.zeros(num_classes, dtype=np.int64)
    for _, chunk in iter_rows(splits["train"].y):
        counts += np.bincount(chunk, minlength=num_classes)
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

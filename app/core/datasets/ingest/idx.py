"""IDX, the MNIST distribution format, gzip'd or not.

Images and labels are told apart by the header (data type byte and number of dimensions), train
and test by the file name (``t10k`` or ``test`` means test). Images are stored as (N, H, W) uint8.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

from app.core.artifacts import layout
from app.core.datasets.ingest.common import (
    CHUNK,
    ArrayOut,
    Converted,
    IngestError,
    IngestLimits,
    Split,
    Upload,
    check_shape,
    read_exact,
    rewrite,
)

RATIO_GRACE_BYTES = 1 << 20  # the expansion is judged once this much is decompressed (a header alone compresses well)
DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class _Source:
    """An upload read as IDX: through gzip when it is gzip'd, with the bytes taken from the upload
    counted, so the decompressed size can be held to KILN_MAX_COMPRESSION_RATIO as it streams."""

    def __init__(self, upload: Upload):
        upload.file.seek(0)
        self.raw = upload.file
        self.gzipped = upload.file.read(2) == b"\x1f\x8b"
        upload.file.seek(0)
        self.stream: IO[bytes] = gzip.GzipFile(fileobj=upload.file, mode="rb") if self.gzipped else upload.file
        self.out = 0

    def read(self, n: int) -> bytes:
        data = self.stream.read(n)
        self.out += len(data)
        return data

    def ratio(self) -> float:
        return self.out / max(self.raw.tell(), 1) if self.gzipped else 1.0


def _header(stream: _Source, name: str) -> tuple[np.dtype, tuple[int, ...]]:
    try:
        zero, code, ndim = struct.unpack(">HBB", read_exact(stream, 4, name, "the IDX magic number"))
    except (OSError, EOFError, zlib.error) as exc:
        raise IngestError(f"not a readable IDX file ({exc})", file=name) from None
    if zero != 0 or code not in DTYPES or not 1 <= ndim <= 4:
        raise IngestError(f"not an IDX file: its magic number is 0x{zero:04x}{code:02x}{ndim:02x}, where MNIST's are 0x00000801 (labels) "
                          f"and 0x00000803 (images); IDX is 0x0000, a type byte (08 for unsigned bytes), then the number of dimensions",
                          file=name)
    dims = struct.unpack(f">{ndim}I", read_exact(stream, 4 * ndim, name, "the IDX dimensions"))
    return np.dtype(DTYPES[code]), tuple(int(d) for d in dims)


def _split_of(name: str) -> str:
    lowered = name.lower()
    return "test" if ("t10k" in lowered or "test" in lowered) else "train"


def _read_into(stream: _Source, dtype: np.dtype, shape: tuple[int, ...], out: ArrayOut, name: str, limits: IngestLimits) -> None:
    row_bytes = dtype.itemsize * math.prod(shape[1:])
    rows_per_chunk = max(1, CHUNK // max(row_bytes, 1))
    remaining = shape[0]
    try:
        while remaining:
            rows = min(rows_per_chunk, remaining)
            data = read_exact(stream, rows * row_bytes, name, f"{shape[0]} samples")
            if stream.out > RATIO_GRACE_BYTES and stream.ratio() > limits.max_compression_ratio:
                raise limits.too_big("the gzip'd file's expansion", round(stream.ratio()), int(limits.max_compression_ratio),
                                     "KILN_MAX_COMPRESSION_RATIO", name)
            out.write(np.frombuffer(data, dtype=dtype).reshape(rows, *shape[1:]).astype(out.dtype, copy=False))
            remaining -= rows
        if stream.read(1):
            raise IngestError(f"trailing data after the {shape[0]} samples its header announces", file=name)
    except (OSError, EOFError, zlib.error) as exc:
        raise IngestError(f"corrupt or truncated file ({exc})", file=name) from None


def convert(uploads: list[Upload], options: dict[str, Any], out_dir: Path, limits: IngestLimits) -> Converted:
    found: dict[tuple[str, str], Path] = {}
    counts: dict[tuple[str, str], tuple[int, str]] = {}
    for upload in uploads:
        name = upload.filename
        stream = _Source(upload)
        dtype, shape = _header(stream, name)
        check_shape(shape, limits, "the IDX file", name)  # before any byte of data is read
        declared = dtype.itemsize * math.prod(shape)
        if declared > limits.max_uncompressed_bytes:
            raise limits.too_big("the size in bytes its header declares", declared, limits.max_uncompressed_bytes,
                                 "KILN_MAX_UNCOMPRESSED_BYTES", name)
        role = "y" if len(shape) == 1 else "x"
        if role == "x" and len(shape) not in (3, 4):
            raise IngestError(f"an IDX image file must have 3 dimensions (N, rows, cols), this one has {len(shape)}", file=name)
        key = (_split_of(name), role)
        if key in found:
            raise IngestError(f"two {key[0]} {'labels' if role == 'y' else 'images'} files; name test files with 't10k' or 'test'", file=name)
        target_dtype = np.uint8 if dtype == np.uint8 else (np.int64 if role == "y" else np.float32)
        out = ArrayOut(out_dir / layout.dataset_array(*key), target_dtype, shape, limits, file=name)
        _read_into(stream, dtype, shape, out, name, limits)
        out.close()
        found[key] = out.path
        counts[key] = (shape[0], name)
    if ("train", "x") not in found or ("train", "y") not in found:
        missing = "images" if ("train", "x") not in found else "labels"
        raise IngestError(f"no training {missing} file among the uploads (an IDX images file and a labels file are needed)")
    for split in ("train", "test"):
        if (split, "x") in found and (split, "y") in found:
            (n_x, f_x), (n_y, f_y) = counts[(split, "x")], counts[(split, "y")]
            if n_x != n_y:
                raise IngestError(f"{n_x} images in {f_x} but {n_y} labels in {f_y}", file=f_x)
            rewrite(found[(split, "y")], lambda labels: labels.astype(np.int64), limits, f_y)
        elif (split, "x") in found or (split, "y") in found:
            raise IngestError(f"the {split} split needs both an images file and a labels file")
    test = Split(found[("test", "x")], found[("test", "y")]) if ("test", "x") in found else None
    return Converted(kind="image", train=Split(found[("train", "x")], found[("train", "y")]), test=test)

"""NumPy ``.npz`` archives: ``x`` and ``y`` (optionally ``x_test``, ``y_test``), and the
``sequences`` flavour with ``lengths`` (and ``lengths_test``).

Arrays are streamed member by member from the archive into ``.npy`` files; object arrays are
refused (they would need unpickling).
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path
from typing import Any

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
    array_header,
    check_shape,
    distinct,
    extremes,
    iter_rows,
    rewrite,
)
from app.core.datasets.ingest.zipsafe import open_zip

MAX_LABEL_BYTES = 1024  # a string label (a class name) of at most 256 characters
MAX_COLUMN_MAJOR_BYTES = 64 * 1024 * 1024  # a Fortran-ordered array is read whole: only a small one


def _member_header(stream, name: str, key: str) -> tuple[np.dtype, tuple[int, ...], bool]:
    try:
        version = np.lib.format.read_magic(stream)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ValueError(f"unsupported .npy version {version}")
        shape, fortran, dtype = read_header(stream, max_header_size=10_000)
    except (ValueError, OSError, EOFError, zlib.error, SyntaxError) as exc:
        raise IngestError(f"array {key!r} is not a valid .npy member ({exc})", file=name) from None
    if dtype.hasobject:
        raise IngestError(f"array {key!r} holds Python objects; only numeric and string arrays are accepted (no pickle)", file=name)
    if dtype.kind in "US" and dtype.itemsize > MAX_LABEL_BYTES:
        raise IngestError(f"array {key!r} holds strings of {dtype.itemsize} bytes; labels are at most {MAX_LABEL_BYTES}", file=name)
    return dtype, tuple(shape), fortran


def _copy_member(archive: zipfile.ZipFile, key: str, name: str, path: Path, limits: IngestLimits) -> Path:
    with archive.open(f"{key}.npy") as stream:
        dtype, shape, fortran = _member_header(stream, name, key)
        if not shape:
            raise IngestError(f"array {key!r} is a scalar; expected one row per sample", file=name)
        check_shape(shape, limits, f"array {key!r}", name)  # before any byte is read
        target = dtype.newbyteorder("=") if dtype.kind in "iuf" else dtype
        row_bytes = dtype.itemsize * math.prod(shape[1:])
        if fortran and len(shape) > 1 and row_bytes * shape[0] > MAX_COLUMN_MAJOR_BYTES:
            raise IngestError(f"array {key!r} is stored column-major (Fortran order) and holds {row_bytes * shape[0]} bytes: it cannot be "
                              f"read row by row; save it with np.ascontiguousarray (at most {MAX_COLUMN_MAJOR_BYTES} are read whole)",
                              file=name, status=413)
        out = ArrayOut(path, target, shape, limits, file=name)
        if fortran and len(shape) > 1:
            data = np.frombuffer(_read(stream, row_bytes * shape[0], name, key), dtype=dtype).reshape(shape[::-1]).T
            out.write(data)
        else:
            rows_per_chunk = max(1, CHUNK // max(row_bytes, 1))
            for start in range(0, shape[0], rows_per_chunk):
                rows = min(rows_per_chunk, shape[0] - start)
                out.write(np.frombuffer(_read(stream, rows * row_bytes, name, key), dtype=dtype).reshape(rows, *shape[1:]))
        out.close()
    return path


def _read(stream, n: int, name: str, key: str) -> bytes:
    try:
        data = stream.read(n)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise IngestError(f"array {key!r} is corrupt ({exc})", file=name) from None
    if len(data) != n:
        raise IngestError(f"array {key!r} is truncated", file=name)
    return data


def _labels(path: Path, name: str, class_names: list[str] | None, limits: IngestLimits) -> list[str] | None:
    """Integer labels stay; string labels become class indices (classes in sorted order). Read in chunks."""
    shape, dtype = array_header(path)
    if len(shape) != 1:
        raise IngestError(f"labels must be one per sample (shape (N,)), got shape {list(shape)}", file=name)
    if dtype.kind in "US":
        seen = {str(v) for v in distinct(path, limits, name)}
        names = class_names or sorted(seen)
        index = {n: i for i, n in enumerate(names)}
        unknown = sorted(seen - set(index))
        if unknown:
            raise IngestError(f"label {unknown[0]!r} is not one of the training classes", file=name)
        rewrite(path, lambda labels: np.array([index[str(v)] for v in labels], dtype=np.int64), limits, name)
        return names
    if dtype.kind == "f":
        for _, chunk in iter_rows(path):
            if not np.isfinite(chunk).all() or not np.equal(np.mod(chunk, 1), 0).all():
                raise IngestError("labels must be class indices (integers); got non-integer values", file=name)
    if dtype.kind not in "iuf" and dtype.kind != "b":
        raise IngestError(f"labels of type {dtype} are not class indices", file=name)
    rewrite(path, lambda labels: labels.astype(np.int64), limits, name)
    return class_names


def _files(members: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Archive member -> the converted dataset's file name for its (split, part)."""
    return {key: layout.dataset_array(split, part) for key, (split, part) in members.items()}


def _read_archive(upload: Upload, out_dir: Path, limits: IngestLimits, keys: dict[str, str], required: set[str]) -> dict[str, Path]:
    archive = open_zip(upload.file, upload.filename, limits)
    members = {n[:-4] for n in archive.namelist() if n.endswith(".npy")}
    missing = sorted(required - members)
    if missing:
        raise IngestError(f"no array {missing[0]!r} in the archive (it has: {', '.join(sorted(members)) or 'none'})", file=upload.filename)
    return {key: _copy_member(archive, key, upload.filename, out_dir / filename, limits) for key, filename in keys.items() if key in members}


def _check_lengths(x: Path, y: Path | None, name: str, split: str) -> None:
    n = array_header(x)[0][0]
    if y is not None and array_header(y)[0][0] != n:
        raise IngestError(f"{n} samples in x{'_test' if split == 'test' else ''} but {array_header(y)[0][0]} labels", file=name)


def _channels_first(path: Path, limits: IngestLimits, name: str) -> None:
    """(N, H, W, C) with C in 1/3/4 is turned into (N, C, H, W)."""
    shape, _ = array_header(path)
    if len(shape) == 4 and shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4):
        rewrite(path, lambda a: np.moveaxis(a, -1, 1), limits, name)


def _to_float_unless_uint8(path: Path, limits: IngestLimits, name: str) -> None:
    if array_header(path)[1] not in (np.uint8, np.float32):
        rewrite(path, lambda a: a.astype(np.float32), limits, name)


def convert(uploads: list[Upload], options: dict[str, Any], out_dir: Path, limits: IngestLimits) -> Converted:
    if len(uploads) != 1:
        raise IngestError(f"the npz format takes one file, got {len(uploads)}")
    upload = uploads[0]
    name = upload.filename
    files = _read_archive(upload, out_dir, limits, _files({"x": ("train", "x"), "y": ("train", "y"), "x_test": ("test", "x"), "y_test": ("test", "y")}), {"x"})
    shape, dtype = array_header(files["x"])
    if len(shape) < 2:
        raise IngestError(f"x must hold one sample per row (at least 2 dimensions), got shape {list(shape)}", file=name)
    if dtype.kind not in "iuf":
        raise IngestError(f"x must be numeric, got {dtype}", file=name)
    if ("x_test" in files) != ("y_test" in files):
        raise IngestError("x_test and y_test come together", file=name)
    kind = "tabular" if len(shape) == 2 else "image"
    for key in ("x", "x_test"):
        if key in files:
            _channels_first(files[key], limits, name)
            _to_float_unless_uint8(files[key], limits, name)
    if "x_test" in files and array_header(files["x_test"])[0][1:] != array_header(files["x"])[0][1:]:
        raise IngestError("x_test samples have a different shape from x samples", file=name)
    class_names = None
    if "y" in files:
        _check_lengths(files["x"], files["y"], name, "train")
        class_names = _labels(files["y"], name, None, limits)
    if "y_test" in files:
        _check_lengths(files["x_test"], files["y_test"], name, "test")
        _labels(files["y_test"], name, class_names, limits)
    test = Split(files["x_test"], files["y_test"]) if "x_test" in files else None
    task = "classification" if "y" in files else "unlabelled"
    return Converted(kind=kind, train=Split(files["x"], files.get("y")), test=test, class_names=class_names, task=task)


def convert_sequences(uploads: list[Upload], options: dict[str, Any], out_dir: Path, limits: IngestLimits) -> Converted:
    if len(uploads) != 1:
        raise IngestError(f"the sequences format takes one file, got {len(uploads)}")
    upload = uploads[0]
    name = upload.filename
    keys = _files({"x": ("train", "x"), "y": ("train", "y"), "lengths": ("train", "lengths"),
                   "x_test": ("test", "x"), "y_test": ("test", "y"), "lengths_test": ("test", "lengths")})
    files = _read_archive(upload, out_dir, limits, keys, {"x", "y", "lengths"})
    splits = {}
    class_names = None
    vocab_size = None
    for split, (xk, yk, lk) in {"train": ("x", "y", "lengths"), "test": ("x_test", "y_test", "lengths_test")}.items():
        if xk not in files:
            continue
        if yk not in files or lk not in files:
            raise IngestError(f"{xk} needs {yk} and {lk}", file=name)
        shape, dtype = array_header(files[xk])
        if len(shape) not in (2, 3):
            raise IngestError(f"{xk} must be (N, T) tokens or (N, T, F) values, got shape {list(shape)}", file=name)
        if len(shape) == 2 and dtype.kind not in "iu":
            raise IngestError(f"{xk} of shape (N, T) must hold integer tokens, got {dtype}", file=name)
        if len(shape) == 3 and dtype.kind not in "iuf":
            raise IngestError(f"{xk} of shape (N, T, F) must hold numbers, got {dtype}", file=name)
        tokens = extremes(files[xk]) if len(shape) == 2 else None
        if tokens and int(tokens[0]) < 0:
            raise IngestError(f"{xk} holds a negative token id", file=name)
        if split == "train" and len(shape) == 2:
            vocab_size = int(tokens[1]) + 1 if tokens else None
        n, padded = shape[0], shape[1]
        rewrite(files[xk], lambda a: a.astype(np.int64 if a.ndim == 2 else np.float32), limits, name)
        lengths_shape, lengths_dtype = array_header(files[lk])
        if lengths_dtype.kind not in "iu":
            raise IngestError(f"{lk} must hold integers (each sample's length), got {lengths_dtype}", file=name)
        if lengths_shape != (n,):
            raise IngestError(f"{lk} must hold one length per sample ({n}), got shape {list(lengths_shape)}", file=name)
        bounds = extremes(files[lk])
        if bounds and (bounds[0] < 1 or bounds[1] > padded):
            raise IngestError(f"{lk} must lie in 1..{padded} (the padded length)", file=name)
        rewrite(files[lk], lambda a: a.astype(np.int64), limits, name)
        _check_lengths(files[xk], files[yk], name, split)
        class_names = _labels(files[yk], name, class_names, limits)
        splits[split] = Split(files[xk], files[yk], files[lk])
    extra = {"vocab_size": vocab_size, "max_length": int(array_header(files["x"])[0][1])}
    return Converted(kind="sequence", train=splits["train"], test=splits.get("test"), class_names=class_names, value_max=1.0, extra=extra)

"""CSV with a header row: numeric feature columns and a label column (``label_column``, default
``label``). String labels become classes. A missing or non-numeric cell is an error naming its row
and column. Rows are parsed in chunks; only the numeric result is kept."""

from __future__ import annotations

import codecs
import csv
from pathlib import Path
from typing import Any

import numpy as np

from app.core.artifacts import layout
from app.core.datasets.ingest.common import ArrayOut, Converted, IngestError, IngestLimits, Split, Upload

ROWS_PER_CHUNK = 10_000


def _rows(upload: Upload):
    upload.file.seek(0)
    text = codecs.getreader("utf-8")(upload.file, errors="strict")
    try:
        yield from csv.reader(text)
    except UnicodeDecodeError as exc:
        raise IngestError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=upload.filename) from None
    except csv.Error as exc:
        raise IngestError(f"not valid CSV ({exc})", file=upload.filename) from None


def convert(uploads: list[Upload], options: dict[str, Any], out_dir: Path, limits: IngestLimits) -> Converted:
    if len(uploads) != 1:
        raise IngestError(f"the csv format takes one file, got {len(uploads)}")
    upload = uploads[0]
    name = upload.filename
    label_column = str(options.get("label_column", "label"))
    rows = _rows(upload)
    header = next(rows, None)
    if not header:
        raise IngestError("empty file: expected a header row", file=name)
    header = [h.strip() for h in header]
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise IngestError(f"column {twice[0]!r} appears more than once in the header", file=name)
    if label_column not in header:
        raise IngestError(f"no label column {label_column!r} in the header ({', '.join(header)}); set label_column", file=name)
    label_at = header.index(label_column)
    features = [h for i, h in enumerate(header) if i != label_at]
    if not features:
        raise IngestError("no feature columns besides the label", file=name)

    chunks: list[np.ndarray] = []
    labels: list[str] = []
    buffer: list[list[float]] = []
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise IngestError(f"row {line} has {len(row)} cells, the header has {len(header)}", file=name)
        values = []
        for column, cell in zip(header, row):
            if column == label_column:
                if not cell.strip():
                    raise IngestError(f"row {line}, column {column!r}: missing label", file=name)
                labels.append(cell.strip())
                continue
            try:
                value = float(cell)
            except ValueError:
                what = "missing value" if not cell.strip() else f"not a number: {cell.strip()[:40]!r}"
                raise IngestError(f"row {line}, column {column!r}: {what}", file=name) from None
            if value != value or value in (float("inf"), float("-inf")):
                raise IngestError(f"row {line}, column {column!r}: NaN or infinity", file=name)
            values.append(value)
        buffer.append(values)
        if len(buffer) >= ROWS_PER_CHUNK:
            chunks.append(np.asarray(buffer, dtype=np.float32))
            buffer = []
    if buffer:
        chunks.append(np.asarray(buffer, dtype=np.float32))
    n = sum(len(c) for c in chunks)
    if n == 0:
        raise IngestError("no data rows after the header", file=name)
    x_path, y_path = out_dir / layout.dataset_array("train", "x"), out_dir / layout.dataset_array("train", "y")
    out = ArrayOut(x_path, np.float32, (n, len(features)), limits, file=name)
    for chunk in chunks:
        out.write(chunk)
    out.close()

    class_names, y = _classes(labels)
    np.save(y_path, y)
    return Converted(kind="tabular", train=Split(x_path, y_path), class_names=class_names,
                     value_max=1.0, extra={"feature_names": features, "label_column": label_column})


def _classes(labels: list[str]) -> tuple[list[str], np.ndarray]:
    """Labels that are all integers keep their numeric order; any other labels are sorted as text."""
    distinct = sorted(set(labels))
    try:
        distinct = sorted(distinct, key=int)
    except ValueError:
        pass
    index = {label: i for i, label in enumerate(distinct)}
    return distinct, np.fromiter((index[label] for label in labels), dtype=np.int64, count=len(labels))

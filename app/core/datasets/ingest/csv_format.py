"""CSV with a header row: numeric feature columns and a label column (``label_column``, default
``label``). String labels become classes. A missing or non-numeric cell is an error naming its row
and column. Streamed: parsed rows go to disk a bounded buffer at a time; columns, line length,
classes and the converted size are bounded."""

from __future__ import annotations

import codecs
import csv
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from app.core.artifacts import layout
from app.core.datasets.ingest.common import Converted, GrowingArrayOut, IngestError, IngestLimits, Split, Upload, rewrite

BUFFER_VALUES = 1 << 18  # parsed values held before they go to disk (~6 MB as Python floats)
MAX_CELL_CHARS = 64  # a line may hold KILN_MAX_CSV_COLUMNS cells of about this many characters


def _lines(text, limit: int, name: str):
    """Lines of at most ``limit`` characters: one endless line cannot be taken in whole."""
    while line := text.readline(limit + 1):
        if len(line) > limit:
            raise IngestError(f"a line longer than {limit} characters", file=name, status=413)
        yield line


def _rows(upload: Upload, limits: IngestLimits):
    upload.file.seek(0)
    text = codecs.getreader("utf-8")(upload.file, errors="strict")
    try:
        yield from csv.reader(_lines(text, limits.max_csv_columns * MAX_CELL_CHARS, upload.filename))
    except UnicodeDecodeError as exc:
        raise IngestError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=upload.filename) from None
    except csv.Error as exc:
        raise IngestError(f"not valid CSV ({exc})", file=upload.filename) from None


def convert(uploads: list[Upload], options: dict[str, Any], out_dir: Path, limits: IngestLimits) -> Converted:
    """Streams: parsed rows go to disk every ``BUFFER_VALUES`` values; labels are numbered as they
    come and renumbered in class order at the end."""
    if len(uploads) != 1:
        raise IngestError(f"the csv format takes one file, got {len(uploads)}")
    upload = uploads[0]
    name = upload.filename
    label_column = str(options.get("label_column", "label"))
    rows = _rows(upload, limits)
    header = next(rows, None)
    if not header:
        raise IngestError("empty file: expected a header row", file=name)
    if len(header) > limits.max_csv_columns + 1:  # the features, and the label
        raise limits.too_big("the number of columns", len(header), limits.max_csv_columns + 1, "KILN_MAX_CSV_COLUMNS", name)
    header = [h.strip() for h in header]
    twice = sorted(h for h, n in Counter(header).items() if n > 1)
    if twice:
        raise IngestError(f"column {twice[0]!r} appears more than once in the header", file=name)
    if label_column not in header:
        raise IngestError(f"no label column {label_column!r} in the header ({', '.join(header[:20])}); set label_column", file=name)
    label_at = header.index(label_column)
    features = [h for i, h in enumerate(header) if i != label_at]
    if not features:
        raise IngestError("no feature columns besides the label", file=name)

    x_path, y_path = out_dir / layout.dataset_array("train", "x"), out_dir / layout.dataset_array("train", "y")
    x_out = GrowingArrayOut(x_path, np.float32, (len(features),), limits, file=name)
    y_out = GrowingArrayOut(y_path, np.int64, (), limits, file=name)
    seen: dict[str, int] = {}  # label -> its number in order of first appearance
    buffer: list[list[float]] = []
    numbers: list[int] = []
    per_flush = max(1, BUFFER_VALUES // len(features))
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise IngestError(f"row {line} has {len(row)} cells, the header has {len(header)}", file=name)
        label = row[label_at].strip()
        if not label:
            raise IngestError(f"row {line}, column {label_column!r}: missing label", file=name)
        if label not in seen:
            if len(seen) == limits.max_classes:
                raise limits.too_big("the number of distinct labels", len(seen) + 1, limits.max_classes, "KILN_MAX_CLASSES", name, status=422)
            seen[label] = len(seen)
        numbers.append(seen[label])
        buffer.append(_values(row, header, label_at, line, name))
        if len(buffer) >= per_flush:
            x_out.write(np.asarray(buffer, dtype=np.float32))
            y_out.write(np.asarray(numbers, dtype=np.int64))
            buffer, numbers = [], []
    if buffer:
        x_out.write(np.asarray(buffer, dtype=np.float32))
        y_out.write(np.asarray(numbers, dtype=np.int64))
    if x_out.rows == 0:
        raise IngestError("no data rows after the header", file=name)
    x_out.close()
    y_out.close()
    class_names = _class_order(list(seen))
    position = {label: i for i, label in enumerate(class_names)}
    renumber = np.array([position[label] for label in seen], dtype=np.int64)
    rewrite(y_path, lambda first_seen: renumber[first_seen], limits, name)
    return Converted(kind="tabular", train=Split(x_path, y_path), class_names=class_names,
                     value_max=1.0, extra={"feature_names": features, "label_column": label_column})


def _values(row: list[str], header: list[str], label_at: int, line: int, name: str) -> list[float]:
    values = []
    for i, cell in enumerate(row):
        if i == label_at:
            continue
        try:
            value = float(cell)
        except ValueError:
            what = "missing value" if not cell.strip() else f"not a number: {cell.strip()[:40]!r}"
            raise IngestError(f"row {line}, column {header[i]!r}: {what}", file=name) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise IngestError(f"row {line}, column {header[i]!r}: NaN or infinity", file=name)
        values.append(value)
    return values


def _class_order(labels: list[str]) -> list[str]:
    """Labels that are all integers keep their numeric order; any other labels are sorted as text."""
    try:
        return sorted(labels, key=int)
    except ValueError:
        return sorted(labels)

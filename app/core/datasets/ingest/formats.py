"""The upload formats by name, and the one entry point that converts an upload of any of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from app.core.datasets.ingest import csv_format, idx, image_zip, npz
from app.core.datasets.ingest.common import Converted, IngestError, IngestLimits, Upload, finish

Converter = Callable[[list[Upload], dict[str, Any], Path, IngestLimits], Converted]

CONVERTERS: dict[str, Converter] = {
    "npz": npz.convert, "csv": csv_format.convert, "idx": idx.convert,
    "image-zip": image_zip.convert, "sequences": npz.convert_sequences,
}
FORMATS = tuple(CONVERTERS)


def convert(fmt: str, uploads: list[Upload], options: dict[str, Any], out_dir: Path, limits: IngestLimits) -> dict[str, Any]:
    """Converts into ``out_dir`` and returns the dataset's description (what ``meta.json`` holds)."""
    if fmt not in CONVERTERS:
        raise IngestError(f"unknown format {fmt!r}; one of: {', '.join(FORMATS)}")
    if not uploads:
        raise IngestError("no file sent: send one or more 'file' parts")
    return finish(CONVERTERS[fmt](uploads, options, out_dir, limits), uploads, out_dir, limits, fmt)

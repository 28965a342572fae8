"""Opening ZIP files that users send: no absolute paths or ``..``, bounded entry count, total size
and compression ratio (ZIP bombs), all checked from the central directory before anything is read."""

from __future__ import annotations

import zipfile
from pathlib import PurePosixPath
from typing import IO

from app.core.datasets.ingest.common import IngestError, IngestLimits


def open_zip(file: IO[bytes], name: str, limits: IngestLimits) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise IngestError(f"not a valid ZIP archive ({exc})", file=name) from None
    entries = archive.infolist()
    if len(entries) > limits.max_zip_entries:
        raise IngestError(f"{len(entries)} entries, over the limit of {limits.max_zip_entries}", file=name, status=413)
    total = 0
    for entry in entries:
        path = entry.filename
        parts = PurePosixPath(path.replace("\\", "/")).parts
        if path.startswith(("/", "\\")) or (parts and parts[0].endswith(":")) or ".." in parts:
            raise IngestError(f"entry {path!r} has an absolute path or '..'", file=name)
        total += entry.file_size
        if total > limits.max_uncompressed_bytes:
            raise IngestError(f"uncompressed size over the limit of {limits.max_uncompressed_bytes} bytes", file=name, status=413)
        if entry.compress_size and entry.file_size / entry.compress_size > limits.max_compression_ratio:
            raise IngestError(
                f"entry {path!r} expands {entry.file_size / entry.compress_size:.0f}x, over the limit of {limits.max_compression_ratio:.0f}x (ZIP bomb?)",
                file=name, status=413,
            )
    return archive

"""Opening ZIP files that users send: the entry count read from the end-of-central-directory
record before the directory itself is parsed; no absolute paths or ``..``; bounded total size and
compression ratio (ZIP bombs), all checked before any entry is read."""

from __future__ import annotations

import struct
import zipfile
from pathlib import PurePosixPath
from typing import IO

from app.core.datasets.ingest.common import IngestError, IngestLimits

END_OF_DIRECTORY = b"PK\x05\x06"
ZIP64_LOCATOR = b"PK\x06\x07"
ZIP64_END_OF_DIRECTORY = b"PK\x06\x06"
TAIL = 22 + 65_535  # the end record, and the longest comment that may follow it


def declared_entries(file: IO[bytes]) -> int | None:
    """The number of entries the archive's end record declares (ZIP64's where it is used); None if
    there is no end record to read (zipfile then says what is wrong)."""
    file.seek(0, 2)
    size = file.tell()
    file.seek(max(0, size - TAIL))
    tail = file.read()
    at = tail.rfind(END_OF_DIRECTORY)
    if at < 0 or len(tail) - at < 22:
        return None
    entries = struct.unpack("<H", tail[at + 10:at + 12])[0]
    locator = at - 20
    if entries == 0xFFFF and locator >= 0 and tail[locator:locator + 4] == ZIP64_LOCATOR:
        offset = struct.unpack("<Q", tail[locator + 8:locator + 16])[0]
        file.seek(offset)
        record = file.read(56)
        if len(record) == 56 and record[:4] == ZIP64_END_OF_DIRECTORY:
            entries = struct.unpack("<Q", record[32:40])[0]
    return entries


def _too_many(entries: int, limits: IngestLimits, name: str) -> IngestError:
    return IngestError(f"{entries} entries, over the limit of {limits.max_zip_entries} (KILN_MAX_ZIP_ENTRIES)", file=name, status=413)


def open_zip(file: IO[bytes], name: str, limits: IngestLimits) -> zipfile.ZipFile:
    declared = declared_entries(file)
    file.seek(0)
    if declared is not None and declared > limits.max_zip_entries:
        raise _too_many(declared, limits, name)
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise IngestError(f"not a valid ZIP archive ({exc})", file=name) from None
    entries = archive.infolist()
    if len(entries) > limits.max_zip_entries:
        raise _too_many(len(entries), limits, name)
    total = 0
    for entry in entries:
        path = entry.filename
        parts = PurePosixPath(path.replace("\\", "/")).parts
        if path.startswith(("/", "\\")) or (parts and parts[0].endswith(":")) or ".." in parts:
            raise IngestError(f"entry {path!r} has an absolute path or '..'", file=name)
        total += entry.file_size
        if total > limits.max_uncompressed_bytes:
            raise IngestError(f"uncompressed size over the limit of {limits.max_uncompressed_bytes} bytes (KILN_MAX_UNCOMPRESSED_BYTES)",
                              file=name, status=413)
        if entry.compress_size and entry.file_size / entry.compress_size > limits.max_compression_ratio:
            raise IngestError(
                f"entry {path!r} expands {entry.file_size / entry.compress_size:.0f}x, over the limit of "
                f"{limits.max_compression_ratio:.0f}x (KILN_MAX_COMPRESSION_RATIO; a ZIP bomb?)",
                file=name, status=413,
            )
    return archive

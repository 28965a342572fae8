"""The artifact store: files by key, in a folder on disk (the embedded default) or in an
S3-compatible object store (``KILN_ARTIFACTS_URL=s3://bucket/prefix``). Keys come from ``layout``.

What a reader sees is complete: a file appears whole or not at all, and a folder (a converted
dataset) is published only once every file in it is. ``configured.open_store`` picks one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Iterator, Protocol


class ArtifactStore(Protocol):
    url: str

    def reachable(self) -> bool:
        """Whether the store answers now (readiness), without waiting out an outage."""

    def write_bytes(self, key: str, data: bytes) -> None: ...

    def write_file(self, key: str, source: Path) -> None:
        """Copies a local file in, streaming (multipart on S3): nothing is held whole in memory."""

    def read_bytes(self, key: str) -> bytes:
        """The file's bytes; FileNotFoundError if there is none."""

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        """The file in chunks, for an answer that streams it."""

    def local_file(self, key: str) -> Path | None:
        """The file's own path where the store is a folder on this host, else None (stream it instead)."""

    def local_copy(self, key: str) -> AbstractContextManager[Path]:
        """A path on this host to read the file from, for the duration of the block."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]:
        """The keys just under ``prefix`` (files and folders), sorted; none that start with a dot."""

    def delete(self, key: str) -> None:
        """The file, or everything under the folder ``key``."""

    def last_modified(self, key: str) -> float | None:
        """When the file, or the newest file under the folder ``key``, last changed (epoch seconds); None if there is none."""

    def size(self, key: str) -> int:
        """Bytes of the file, or of everything under the folder ``key``; 0 if there is nothing."""

    def append_text(self, key: str, text: str) -> None:
        """Adds to a text file (a job's log); ``read_text`` gives everything appended, in order."""

    def read_text(self, key: str) -> str:
        """A text file written by ``append_text``; empty if nothing was."""

    def publish_folder(self, prefix: str) -> AbstractContextManager[Path]:
        """A new local folder to fill; published as ``prefix`` only if the block succeeds, else discarded."""

    def local_folder(self, prefix: str) -> Path:
        """A published folder, readable (and memory-mappable) on this host."""


"""A host's cache of folders fetched from the object store (datasets), keyed by content hash and
bounded in bytes: the least recently used entries go first. Shared by every process on the host:
a file lock makes one of them fetch a folder while the others wait for it; an entry is renamed into
place only once complete, and an evicted entry that a process still has memory-mapped stays
readable to it (the kernel keeps an unlinked file's pages until they are unmapped)."""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

log = logging.getLogger("kiln.cache")


class FolderCache:
    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = max_bytes

    def get(self, digest: str, fill: Callable[[Path], None]) -> Path:
        """The folder cached under ``digest``, filled by ``fill(folder)`` on a miss."""
        if not digest.isalnum():
            raise ValueError(f"not a content hash: {digest!r}")
        folder = self.root / digest
        if folder.is_dir():
            os.utime(folder)  # its last use, for eviction
            return folder
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock(digest):
            if folder.is_dir():  # another process fetched it while this one waited
                os.utime(folder)
                return folder
            partial = self.root / f".partial-{digest}-{secrets.token_hex(4)}"
            partial.mkdir()
            try:
                fill(partial)
                partial.rename(folder)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
        self.evict(keep=digest)
        return folder

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, folder) of each complete entry, least recently used first."""
        found = []
        for folder in self.root.iterdir() if self.root.is_dir() else ():
            if folder.is_dir() and not folder.name.startswith("."):
                found.append((folder.stat().st_mtime, sum(p.stat().st_size for p in folder.iterdir()), folder))
        return sorted(found)

    def evict(self, keep: str) -> None:
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        for _, size, folder in entries:
            if total <= self.max_bytes:
                break
            if folder.name != keep:
                log.info("evicting %s (%d bytes) from the cache", folder.name, size)
                shutil.rmtree(folder, ignore_errors=True)
                total -= size

    @contextmanager
    def _lock(self, digest: str) -> Iterator[None]:
        with open(self.root / f".lock-{digest}", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

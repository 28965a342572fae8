"""The artifact store: files by key in a folder on disk. Keys come from ``layout``.

Writes are atomic (temp file in the same folder, then rename), so a reader or a resumed attempt
never sees half a file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class ArtifactStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        target = (self.root / key).resolve()
        if self.root.resolve() not in target.parents:
            raise ValueError(f"artifact key escapes the store: {key!r}")
        return target

    @contextmanager
    def atomic_path(self, key: str) -> Iterator[Path]:
        """Yields a temporary path to write; it becomes ``key`` only if the block succeeds."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        try:
            yield Path(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.atomic_path(key) as tmp:
            tmp.write_bytes(data)

    def append_text(self, key: str, text: str) -> None:
        """Appends to a text file (a job's log), creating it and its folder if need be."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a", encoding="utf-8") as f:
            f.write(text)

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def list(self, prefix: str) -> list[str]:
        base = self.path(prefix)
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.iterdir() if not p.name.startswith("."))

    def delete(self, key: str) -> None:
        target = self.path(key)
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists():
            target.unlink()

    def size(self, key: str) -> int:
        target = self.path(key)
        if target.is_dir():
            return sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        return target.stat().st_size


"""The artifact store as a folder on disk: the embedded default, and any shared filesystem.

Writes are atomic (temp file in the same folder, then rename), so a reader or a resumed attempt
never sees half a file; a dataset is converted in a staging folder renamed into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from app.core.artifacts import layout

CHUNK = 1024 * 1024


class LocalStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = f"file://{self.root}"

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

    def reachable(self) -> bool:
        return self.root.is_dir()

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.atomic_path(key) as tmp:
            tmp.write_bytes(data)

    def write_file(self, key: str, source: Path) -> None:
        with self.atomic_path(key) as tmp:
            shutil.copyfile(source, tmp)

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        with open(self.path(key), "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    def local_file(self, key: str) -> Path | None:
        return self.path(key)

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        yield path

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

    def last_modified(self, key: str) -> float | None:
        target = self.path(key)
        if target.is_dir():
            return max((p.stat().st_mtime for p in target.rglob("*") if p.is_file()), default=target.stat().st_mtime)
        return target.stat().st_mtime if target.exists() else None

    def size(self, key: str) -> int:
        target = self.path(key)
        if target.is_dir():
            return sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        return target.stat().st_size if target.exists() else 0

    def append_text(self, key: str, text: str) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a", encoding="utf-8") as f:
            f.write(text)

    def read_text(self, key: str) -> str:
        target = self.path(key)
        return target.read_text(encoding="utf-8") if target.exists() else ""

    @contextmanager
    def publish_folder(self, prefix: str) -> Iterator[Path]:
        final = self.path(prefix)
        staging = self.path(layout.staging_of(prefix))
        staging.mkdir(parents=True)
        try:
            yield staging
            staging.rename(final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def local_folder(self, prefix: str) -> Path:
        return self.path(prefix)

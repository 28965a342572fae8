"""Datasets: upload files (streamed from disk, never read whole), list, read, delete."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from kiln_client.paging import pages
from kiln_client.transport import Transport, new_idempotency_key

Progress = Callable[[int], None]  # called with the bytes just sent


class _Counted:
    """A file that reports each chunk httpx reads from it; its length stays visible (``fileno``),
    so the upload keeps a Content-Length."""

    def __init__(self, file: BinaryIO, progress: Progress):
        self._file, self._progress = file, progress

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._progress(len(chunk))
        return chunk

    def fileno(self) -> int:
        return self._file.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()


class Datasets:
    def __init__(self, transport: Transport):
        self._t = transport

    def upload(self, *paths: str | Path, format: str, name: str | None = None, options: dict[str, Any] | None = None,
               progress: Progress | None = None, idempotency_key: str | None = None) -> dict[str, Any]:
        """One dataset from one or more files (IDX: images and labels, optionally the test pair);
        ``name`` defaults to the first file's name. Safe to retry: the same ``Idempotency-Key``
        never makes a second dataset."""
        if not paths:
            raise ValueError("upload needs at least one file")
        files = [Path(p) for p in paths]
        data = {"name": name or files[0].name, "format": format}
        if options:
            data["options"] = json.dumps(options)

        def body() -> dict[str, Any]:
            opened = [open(p, "rb") for p in files]
            handles = [_Counted(f, progress) for f in opened] if progress else opened
            return {"files": [("file", (p.name, h, "application/octet-stream")) for p, h in zip(files, handles)]}

        headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
        return self._t.json("POST", "/v1/datasets", data=data, headers=headers, body_factory=body)

    def get(self, dataset_id: str) -> dict[str, Any]:
        return self._t.json("GET", f"/v1/datasets/{dataset_id}")

    def list(self, limit: int | None = None) -> Iterator[dict[str, Any]]:
        yield from pages(self._t, "/v1/datasets", {}, limit)

    def delete(self, dataset_id: str) -> None:
        self._t.request("DELETE", f"/v1/datasets/{dataset_id}")


def total_bytes(paths: Sequence[str | Path]) -> int:
    return sum(Path(p).stat().st_size for p in paths)

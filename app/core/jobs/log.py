"""A job's log, a text file in the artifact store: attempts, resumes, outcomes, tracebacks."""

from __future__ import annotations

from datetime import datetime, timezone

from app.core.artifacts import layout
from app.core.artifacts.store import ArtifactStore


def append(store: ArtifactStore, job_id: str, text: str) -> None:
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    store.append_text(layout.job_log(job_id), f"{stamp} {text.rstrip()}\n")


def read(store: ArtifactStore, job_id: str) -> str:
    """The whole log; empty before the first attempt has started."""
    key = layout.job_log(job_id)
    return store.read_bytes(key).decode("utf-8") if store.exists(key) else ""

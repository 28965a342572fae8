"""A job's log, a text file in the artifact store: attempts, resumes, outcomes, tracebacks."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from app.core.artifacts import layout
from app.core.artifacts.store import ArtifactStore
from app.core.errors import Unavailable

logger = logging.getLogger("kiln.jobs")


def append(store: ArtifactStore, job_id: str, text: str) -> None:
    """Best effort: a line lost while the object store is away beats an attempt that cannot record its outcome."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    try:
        store.append_text(layout.job_log(job_id), f"{stamp} {text.rstrip()}\n")
    except Unavailable as exc:
        logger.warning("job %s: a line of its log was lost: %s", job_id, exc.message)


def read(store: ArtifactStore, job_id: str) -> str:
    """The whole log; empty before the first attempt has started."""
    return store.read_text(layout.job_log(job_id))

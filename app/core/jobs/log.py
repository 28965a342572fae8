"""A job's log, a text file in the artifact store: attempts, resumes, outcomes, tracebacks."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone

from sqlalchemy import event
from sqlalchemy.orm import Session

from app.core.artifacts import layout
from app.core.artifacts.store import ArtifactStore
from app.core.errors import Unavailable
from app.core.jobs import events

logger = logging.getLogger("kiln.jobs")


# Held while a line is committed as an event and then appended to the file, so that the two
# records keep one order even if a second thread of a worker ever writes lines (today only the
# attempt's thread does: the heartbeat must never wait on the store).
order = threading.Lock()


def line(text: str) -> str:
    """A log line as written: stamped with the time, one line per call (a traceback's included)."""
    return f"{datetime.now(timezone.utc).isoformat(timespec='milliseconds')} {text.rstrip()}\n"


def append(store: ArtifactStore, job_id: str, text: str, *, stamped: bool = False) -> None:
    """Best effort: a line lost while the object store is away beats an attempt that cannot record its outcome."""
    try:
        store.append_text(layout.job_log(job_id), text if stamped else line(text))
    except Unavailable as exc:
        logger.warning("job %s: a line of its log was lost: %s", job_id, exc.message)


def note(session: Session, store: ArtifactStore, *, job_id: str, tenant_id: str, text: str) -> None:
    """A line the API writes (a cancel): an event in the caller's transaction, and a line of the
    file once that transaction commits, so a cancel that did not happen is never in the log."""
    stamped = line(text)
    events.append(session, job_id=job_id, tenant_id=tenant_id, events=[("log", {"line": stamped})])
    event.listen(session, "after_commit", lambda _: append(store, job_id, stamped, stamped=True), once=True)


def read(store: ArtifactStore, job_id: str) -> str:
    """The whole log; empty before the first attempt has started."""
    return store.read_text(layout.job_log(job_id))

"""Files in the artifact store that no row owns any more, collected after a grace period: the
model of an attempt that lost its lease or crashed before its outcome was recorded, a dataset
whose upload failed between publishing and its row, a job's files whose delete did not finish.
A folder is only collected once it has not changed for ``grace_seconds``: files are written
before the row that owns them is committed (a model before its outcome, a dataset before its row)."""

from __future__ import annotations

import logging
import time

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.core.artifacts.store import ArtifactStore
from app.core.db.tables import Dataset, Job, TrainedModel

log = logging.getLogger("kiln.orphans")

OWNERS = {"jobs": Job, "models": TrainedModel, "datasets": Dataset}
BATCH = 500


def sweep(*, sessions: sessionmaker[Session], store: ArtifactStore, grace_seconds: float) -> list[str]:
    """Deletes every folder under jobs/, models/ and datasets/ that no row owns and that has not
    changed for ``grace_seconds``; the folders it deleted."""
    removed: list[str] = []
    now = time.time()
    for kind, table in OWNERS.items():
        folders = store.list(kind)
        for start in range(0, len(folders), BATCH):
            batch = {key.rsplit("/", 1)[-1]: key for key in folders[start:start + BATCH]}
            with sessions() as session:
                owned = set(session.scalars(select(table.id).where(table.id.in_(list(batch)))))
            for item_id, key in batch.items():
                if item_id in owned:
                    continue
                changed = store.last_modified(key)
                if changed is not None and now - changed >= grace_seconds:
                    store.delete(key)
                    removed.append(key)
    if removed:
        log.info("collected %d orphaned folders: %s", len(removed), ", ".join(removed[:10]))
    return removed

"""The job's log, a text file beside its checkpoints: attempts, resumes, outcomes, tracebacks."""

from __future__ import annotations

from datetime import datetime, timezone

from app.artifacts import ArtifactStore, job_prefix


def append_log(store: ArtifactStore, job_id: str, text: str) -> None:
    path = store.path(f"{job_prefix(job_id)}/log.txt")
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{stamp} {text.rstrip()}\n")

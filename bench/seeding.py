"""What the large-database benchmarks write straight into a Kiln database, as the API would have:
a key for each bench tenant, and rows in batches (jobs and metric points by the million go in
through the API in hours, not seconds)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.core.db.engine import session_factory
from app.core.db.tables import Tenant

BATCH = 20_000


def tenant_keys(stack, names: Iterable[str]) -> dict[str, tuple[str, str]]:
    """A new API key for each tenant name (created by ``kiln keys create``): name -> (key, tenant id)."""
    keys = {name: stack.kiln("keys", "create", "--tenant", name).strip().splitlines()[-1] for name in names}
    with session_factory(stack.settings().database_url)() as s:
        return {name: (key, s.scalar(select(Tenant.id).where(Tenant.name == name))) for name, key in keys.items()}


def insert_batched(session: Session, table, rows: Iterable[dict]) -> None:
    """Rows of ``table``, BATCH to a statement (one statement of millions would hold them all in memory)."""
    buffer: list[dict] = []
    for row in rows:
        buffer.append(row)
        if len(buffer) >= BATCH:
            session.execute(insert(table), buffer)
            buffer = []
    if buffer:
        session.execute(insert(table), buffer)


def train_loss_points(job_id: str, tenant_id: str, steps: int, at: datetime, noise=None) -> Iterator[dict]:
    """A job's train_loss as 1/step (plus ``noise()`` if given), steps 1..steps."""
    for step in range(1, steps + 1):
        yield {"job_id": job_id, "name": "train_loss", "step": step, "tenant_id": tenant_id, "epoch": step // 1000,
               "value": 1.0 / step + (noise() if noise else 0.0), "time": at}

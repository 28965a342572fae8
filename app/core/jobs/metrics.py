"""Metric series. Writes are one multi-row upsert per flush, keyed (job, name, step): a replayed
stretch of training overwrites its points instead of duplicating them."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.db.tables import MetricPoint
from app.core.jobs import service as job_service

_ROWS_PER_STATEMENT = 2000  # SQLite allows 32,766 bound variables; 7 per row


@dataclass(frozen=True)
class Point:
    name: str
    step: int
    epoch: int
    value: float
    time: datetime


def _upsert(session: Session):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two backends Kiln supports
        raise RuntimeError(f"unsupported database dialect {dialect}")
    return insert


def write(*, session: Session, tenant_id: str, job_id: str, points: list[Point]) -> None:
    if not points:
        return
    insert = _upsert(session)
    # Within one batch the last value for a key wins, and ON CONFLICT cannot touch a row twice.
    latest: dict[tuple[str, int], Point] = {(p.name, p.step): p for p in points}
    rows = [
        {"job_id": job_id, "tenant_id": tenant_id, "name": p.name, "step": p.step, "epoch": p.epoch, "value": p.value, "time": p.time}
        for p in latest.values()
    ]
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        stmt = insert(MetricPoint).values(rows[start : start + _ROWS_PER_STATEMENT])
        stmt = stmt.on_conflict_do_update(
            index_elements=["job_id", "name", "step"],
            set_={"epoch": stmt.excluded.epoch, "value": stmt.excluded.value, "time": stmt.excluded.time},
        )
        session.execute(stmt)


def series(
    *, session: Session, tenant_id: str, job_id: str, names: list[str] | None, since_step: int | None
) -> dict[str, list[dict[str, Any]]]:
    job_service.get(session=session, tenant_id=tenant_id, job_id=job_id)  # 404 for other tenants' jobs
    stmt = select(MetricPoint.name, MetricPoint.step, MetricPoint.epoch, MetricPoint.value, MetricPoint.time).where(
        MetricPoint.job_id == job_id, MetricPoint.tenant_id == tenant_id
    )
    if names:
        stmt = stmt.where(MetricPoint.name.in_(names))
    if since_step is not None:
        stmt = stmt.where(MetricPoint.step > since_step)
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in session.execute(stmt.order_by(MetricPoint.name, MetricPoint.step)):
        if math.isfinite(row.value):  # JSON has no NaN; none is written now, an old row may hold one
            out[row.name].append({"step": row.step, "epoch": row.epoch, "value": row.value, "time": row.time})
    return dict(out)

"""Metric series. Writes are one multi-row upsert per flush, keyed (job, name, step): a replayed
stretch of training overwrites its points instead of duplicating them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
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


@dataclass(frozen=True)
class Series:
    points: list[dict[str, Any]]
    total: int  # points in the asked range; more than ``len(points)`` when downsampled


def _range(stmt, since_step: int | None, until_step: int | None):
    if since_step is not None:
        stmt = stmt.where(MetricPoint.step > since_step)
    if until_step is not None:
        stmt = stmt.where(MetricPoint.step <= until_step)
    return stmt


def _point(row) -> dict[str, Any]:
    return {"step": row.step, "epoch": row.epoch, "value": row.value, "time": row.time}


def series(
    *, session: Session, tenant_id: str, job_id: str, names: list[str] | None, since_step: int | None = None,
    until_step: int | None = None, max_points: int = 1000,
) -> dict[str, Series]:
    """Each metric's points in (since_step, until_step], at most ``max_points`` a series. A longer
    series is downsampled in the database with M4 (Jugel et al. 2014): its step range is cut into
    ``max_points / 4`` stretches and each keeps its first, last, lowest and highest point, so a line
    drawn through them looks as the whole series would and spikes survive; the answer's size (and
    what crosses the wire) is the same for a thousand points as for a million."""
    job_service.get(session=session, tenant_id=tenant_id, job_id=job_id)  # 404 for other tenants' jobs
    owned = (MetricPoint.job_id == job_id, MetricPoint.tenant_id == tenant_id)
    stats = _range(select(MetricPoint.name, func.count(), func.min(MetricPoint.step), func.max(MetricPoint.step)).where(*owned),
                   since_step, until_step)
    if names:
        stats = stats.where(MetricPoint.name.in_(names))
    out: dict[str, Series] = {}
    for name, count, first, last in session.execute(stats.group_by(MetricPoint.name).order_by(MetricPoint.name)).all():
        rows = _range(select(MetricPoint).where(*owned, MetricPoint.name == name), since_step, until_step)
        if count <= max_points:
            found = session.scalars(rows.order_by(MetricPoint.step)).all()
        else:
            found = session.execute(_m4(rows, first, last, max(1, max_points // 4))).all()
        # JSON has no NaN; none is written now, an old row may hold one
        out[name] = Series([_point(r) for r in found if math.isfinite(r.value)], count)
    return out


def _m4(rows, first: int, last: int, buckets: int):
    """The first, last, lowest and highest point of each of ``buckets`` equal stretches of steps, in step order."""
    inner = rows.add_columns(((MetricPoint.step - first) * buckets // (last - first + 1)).label("bucket")).subquery()
    orders = {"first": (inner.c.step.asc(),), "last": (inner.c.step.desc(),),
              "lowest": (inner.c.value.asc(), inner.c.step), "highest": (inner.c.value.desc(), inner.c.step)}
    ranked = select(inner, *(func.row_number().over(partition_by=inner.c.bucket, order_by=order).label(name)
                             for name, order in orders.items())).subquery()
    return select(ranked.c.step, ranked.c.epoch, ranked.c.value, ranked.c.time).where(
        or_(*(ranked.c[name] == 1 for name in orders))).order_by(ranked.c.step)


def points(
    *, session: Session, tenant_id: str, job_id: str, name: str, since_step: int | None, until_step: int | None, limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of a metric's raw points, in step order: the points after ``since_step``, and the
    step to pass as ``since_step`` for the next page (None after the last)."""
    job_service.get(session=session, tenant_id=tenant_id, job_id=job_id)
    rows = _range(select(MetricPoint).where(MetricPoint.job_id == job_id, MetricPoint.tenant_id == tenant_id, MetricPoint.name == name),
                  since_step, until_step)
    found = session.scalars(rows.order_by(MetricPoint.step).limit(limit + 1)).all()
    page = [_point(r) for r in found[:limit] if math.isfinite(r.value)]
    return page, (found[limit - 1].step if len(found) > limit else None)

"""Metric series. Writes are one multi-row upsert per flush, keyed (job, name, step): a replayed
stretch of training overwrites its points instead of duplicating them."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.db.tables import MetricPoint
from app.core.db.upsert import insert_for
from app.core.jobs import metric_rollups as rollups
from app.core.jobs import service as job_service


@dataclass(frozen=True)
class Point:
    name: str
    step: int
    epoch: int
    value: float
    time: datetime


def write(*, session: Session, tenant_id: str, job_id: str, points: list[Point]) -> None:
    if not points:
        return
    insert = insert_for(session)
    # Within one batch the last value for a key wins, and ON CONFLICT cannot touch a row twice.
    latest: dict[tuple[str, int], Point] = {(p.name, p.step): p for p in points}
    rows = [
        {"job_id": job_id, "tenant_id": tenant_id, "name": p.name, "step": p.step, "epoch": p.epoch, "value": p.value, "time": p.time}
        for p in latest.values()
    ]
    stmt = insert(MetricPoint.__table__)  # executemany with a cached statement: a multi-row VALUES recompiles per row
    session.execute(stmt.on_conflict_do_update(
        index_elements=["job_id", "name", "step"],
        set_={"epoch": stmt.excluded.epoch, "value": stmt.excluded.value, "time": stmt.excluded.time},
    ), rows)
    touched: dict[str, set[int]] = defaultdict(set)
    for name, step in latest:
        touched[name].add(step)
    rollups.refresh(session=session, tenant_id=tenant_id, job_id=job_id, steps=touched)


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


_POINT = select(MetricPoint.step, MetricPoint.epoch, MetricPoint.value, MetricPoint.time)  # plain rows: no ORM objects to build


def _point(row) -> dict[str, Any]:
    return {"step": row.step, "epoch": row.epoch, "value": row.value, "time": row.time}


def series(
    *, session: Session, tenant_id: str, job_id: str, names: list[str] | None, since_step: int | None = None,
    until_step: int | None = None, max_points: int = 1000,
) -> dict[str, Series]:
    """Each metric's points in (since_step, until_step], at most ``max_points`` a series. A longer
    series is downsampled with M4 (Jugel et al. 2014): its steps are cut into aligned stretches of
    equal width, at most ``max_points / 4`` of them, and each keeps its first, last, lowest and
    highest point, so a line drawn through them looks as the whole series would and spikes survive.
    The stretches come from the roll-ups (``metric_rollups``), so the answer costs about the same for
    a thousand points as for a million."""
    job_service.get(session=session, tenant_id=tenant_id, job_id=job_id)  # 404 for other tenants' jobs
    ranged = since_step is not None or until_step is not None
    out: dict[str, Series] = {}
    for name, whole in rollups.summaries(session=session, tenant_id=tenant_id, job_id=job_id, names=names).items():
        owned = (MetricPoint.job_id == job_id, MetricPoint.tenant_id == tenant_id, MetricPoint.name == name)
        rows = _range(_POINT.where(*owned), since_step, until_step).order_by(MetricPoint.step)
        if not ranged and whole.count <= max_points:
            out[name] = Series(_points(session.execute(rows).all()), whole.count)
            continue
        if ranged:
            found = session.execute(rows.limit(max_points + 1)).all()
            if not found:
                continue
            if len(found) <= max_points:
                out[name] = Series(_points(found), len(found))
                continue
            first = found[0].step
            last = session.scalar(_range(select(func.max(MetricPoint.step)).where(*owned), since_step, until_step))
        else:
            first, last = whole.first[0], whole.last[0]
        out[name] = _downsampled(session, tenant_id, job_id, name, first, last, since_step, until_step, max(1, max_points // 4))
    return out


def _points(rows) -> list[dict[str, Any]]:
    return [_point(r) for r in rows if math.isfinite(r.value)]  # JSON has no NaN: none is written now, an old row may hold one


def _stretch_width(first: int, last: int, stretches: int) -> tuple[int, int | None]:
    """The narrowest stretch width that cuts ``first..last`` into at most ``stretches`` aligned
    stretches, and the roll-up level to build them from: one whose width divides it 4 to 7 times (so
    a stretch reads at most 8 roll-ups), or None for widths too narrow for roll-ups (read raw)."""
    width = max(1, -(-(last - first + 1) // stretches))
    while True:
        level = max((lv for lv in rollups.LEVELS if 4 << lv <= width), default=None)
        if level is not None:
            width = -(-width >> level) << level  # a whole number of level-sized roll-ups
        if last // width - first // width + 1 <= stretches:
            return width, level
        width += 1 if level is None else 1 << level


def _downsampled(session: Session, tenant_id: str, job_id: str, name: str, first: int, last: int,
                 since_step: int | None, until_step: int | None, stretches: int) -> Series:
    width, level = _stretch_width(first, last, stretches)
    lo, hi = first // width, last // width
    # Stretches wholly inside the asked range come from roll-ups; the one or two it cuts, from points.
    whole_lo = lo if since_step is None or lo * width > since_step else lo + 1
    whole_hi = hi if until_step is None or (hi + 1) * width - 1 <= until_step else hi - 1
    if level is None or whole_lo > whole_hi:
        found, cut = {}, [(lo, hi)]
    else:
        found = rollups.stretches(session=session, tenant_id=tenant_id, job_id=job_id, name=name, level=level, width=width,
                                  first=whole_lo, last=whole_hi)
        cut = [(lo, whole_lo - 1), (whole_hi + 1, hi)]
    for a, b in cut:
        if a > b:
            continue
        raw = _range(_POINT.where(MetricPoint.job_id == job_id, MetricPoint.tenant_id == tenant_id, MetricPoint.name == name,
                                  MetricPoint.step >= a * width, MetricPoint.step < (b + 1) * width), since_step, until_step)
        found.update(rollups.points_folded(session.execute(raw), lambda step: step // width))
    kept = sorted(set().union(*(s.marks() for s in found.values())))
    return Series([rollups.point(m) for m in kept], sum(s.count for s in found.values()))


def at_step(*, session: Session, tenant_id: str, job_id: str, step: int) -> dict[str, float]:
    """Every metric recorded at exactly ``step`` (an epoch's end: its train, validation and learning
    rate values), one key lookup per metric name."""
    names = list(rollups.summaries(session=session, tenant_id=tenant_id, job_id=job_id, names=None))
    rows = session.execute(select(MetricPoint.name, MetricPoint.value).where(
        MetricPoint.job_id == job_id, MetricPoint.tenant_id == tenant_id, MetricPoint.name.in_(names), MetricPoint.step == step))
    return {name: value for name, value in rows}


def points(
    *, session: Session, tenant_id: str, job_id: str, name: str, since_step: int | None, until_step: int | None, limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of a metric's raw points, in step order: the points after ``since_step``, and the
    step to pass as ``since_step`` for the next page (None after the last)."""
    job_service.get(session=session, tenant_id=tenant_id, job_id=job_id)
    rows = _range(_POINT.where(MetricPoint.job_id == job_id, MetricPoint.tenant_id == tenant_id, MetricPoint.name == name),
                  since_step, until_step)
    found = session.execute(rows.order_by(MetricPoint.step).limit(limit + 1)).all()
    page = _points(found[:limit])
    return page, (found[limit - 1].step if len(found) > limit else None)

"""Metric roll-ups: each series summed up per aligned stretch of steps, at every power-of-two width
from 8 to 2**20 steps, kept as points arrive. A downsampled read of a million-point series then reads
about as many roll-up rows as it answers points, instead of the million (bench/scale.py).

A stretch at ``level`` L and ``bucket`` b covers steps ``[b << L, (b + 1) << L)``; it is rebuilt from
raw points at the lowest level and from its two halves above, so a flush of n points reads about 2n
rows whatever the series' length, and a replayed stretch (a resumed job overwriting its points)
leaves roll-ups that agree with the points.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from app.core.db.tables import MetricPoint, MetricRollup
from app.core.db.upsert import insert_for

LEVELS = tuple(range(3, 21))  # stretch widths 8 .. 1,048,576 steps
TOP = LEVELS[-1]
_RANGES_PER_STATEMENT = 200
_MARKS = ("first", "last", "low", "high")
_MARK_FIELDS = ("step", "epoch", "value", "time_us")
_COLUMNS = ("count", *(f"{mark}_{field}" for mark in _MARKS for field in _MARK_FIELDS))
_STRETCH = tuple(getattr(MetricRollup, c) for c in _COLUMNS)

Mark = tuple[int, int, float, int]  # a point: step, epoch, value, time in microseconds since 1970
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def mark(step: int, epoch: int, value: float, time: datetime) -> Mark:
    return step, epoch, value, (time - _EPOCH) // _MICROSECOND


def point(mark: Mark) -> dict[str, Any]:
    """A mark as the API shows a metric point."""
    step, epoch, value, time_us = mark
    return {"step": step, "epoch": epoch, "value": value, "time": _EPOCH + time_us * _MICROSECOND}


@dataclass(frozen=True)
class Stretch:
    """What a downsampled chart keeps of a run of points: M4's first, last, lowest and highest point."""

    count: int
    first: Mark
    last: Mark
    low: Mark
    high: Mark

    def marks(self) -> set[Mark]:
        return {self.first, self.last, self.low, self.high}

    def columns(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count}
        for mark in _MARKS:
            out.update(zip((f"{mark}_{field}" for field in _MARK_FIELDS), getattr(self, mark)))
        return out


def fold(rows: Iterable[tuple]) -> dict[Any, Stretch]:
    """Rows of (key, count, first, last, low, high) summed up per key, in one pass over plain tuples
    (a chart's read folds a thousand); ties on a value go to the earliest step, as in M4."""
    acc: dict[Any, list] = {}
    for key, count, first, last, low, high in rows:
        a = acc.get(key)
        if a is None:
            acc[key] = [count, first, last, low, high]
            continue
        a[0] += count
        if first[0] < a[1][0]:
            a[1] = first
        if last[0] > a[2][0]:
            a[2] = last
        if low[2] < a[3][2] or (low[2] == a[3][2] and low[0] < a[3][0]):
            a[3] = low
        if high[2] > a[4][2] or (high[2] == a[4][2] and high[0] < a[4][0]):
            a[4] = high
    return {key: Stretch(*a) for key, a in acc.items()}


def _row(key: Any, row) -> tuple:
    """A roll-up row (count then the four marks' columns) as ``fold`` reads it."""
    return (key, row[0], tuple(row[1:5]), tuple(row[5:9]), tuple(row[9:13]), tuple(row[13:17]))


def _runs(buckets: list[int]) -> Iterator[tuple[int, int]]:
    """Sorted bucket numbers as (first, last) runs of consecutive ones: a flush touches one or two."""
    start = prev = buckets[0]
    for b in buckets[1:]:
        if b != prev + 1:
            yield start, prev
            start = b
        prev = b
    yield start, prev


def points_folded(rows: Iterable[tuple], key) -> dict[Any, Stretch]:
    """Raw (step, epoch, value, time) rows summed up per ``key(step)``; non-finite values left out
    (none is written now; an old row may hold one, and no chart shows it)."""
    marks = (mark(*row) for row in rows)
    return fold((key(m[0]), 1, m, m, m, m) for m in marks if math.isfinite(m[2]))


def _raw(session: Session, job_id: str, wanted: dict[str, list[int]], level: int) -> dict[tuple[str, int], Stretch]:
    """The wanted level-``level`` stretches, from their points."""
    ranges = [and_(MetricPoint.name == name, MetricPoint.step >= first << level, MetricPoint.step < (last + 1) << level)
              for name, buckets in wanted.items() for first, last in _runs(buckets)]
    rows: list[tuple] = []
    for start in range(0, len(ranges), _RANGES_PER_STATEMENT):
        found = session.execute(select(MetricPoint.name, MetricPoint.step, MetricPoint.epoch, MetricPoint.value, MetricPoint.time).where(
            MetricPoint.job_id == job_id, or_(*ranges[start : start + _RANGES_PER_STATEMENT])))
        for name, *point in found:
            m = mark(*point)
            if math.isfinite(m[2]):  # none is written now; an old row may hold one, and no chart shows it
                rows.append(((name, m[0] >> level), 1, m, m, m, m))
    return fold(rows)


def _stored(session: Session, job_id: str, level: int, wanted: dict[str, list[int]], shift: int) -> dict[tuple[str, int], Stretch]:
    """The wanted stretches ``shift`` levels above ``level``, from the level-``level`` roll-ups inside them."""
    ranges = [and_(MetricRollup.name == name, MetricRollup.bucket >= first << shift, MetricRollup.bucket < (last + 1) << shift)
              for name, buckets in wanted.items() for first, last in _runs(buckets)]
    rows: list[tuple] = []
    for start in range(0, len(ranges), _RANGES_PER_STATEMENT):
        found = session.execute(select(MetricRollup.name, MetricRollup.bucket, *_STRETCH).where(
            MetricRollup.job_id == job_id, MetricRollup.level == level, or_(*ranges[start : start + _RANGES_PER_STATEMENT])))
        rows += [_row((row[0], row[1] >> shift), row[2:]) for row in found]
    return fold(rows)


def refresh(*, session: Session, tenant_id: str, job_id: str, steps: dict[str, Iterable[int]]) -> None:
    """Rebuilds every stretch that holds one of these (just written) steps, level by level."""
    wanted = {name: sorted({s >> LEVELS[0] for s in touched}) for name, touched in steps.items() if touched}
    if not wanted:
        return
    parts = _raw(session, job_id, wanted, LEVELS[0])
    stmt = insert_for(session)(MetricRollup.__table__)  # executemany with a cached statement
    upsert = stmt.on_conflict_do_update(index_elements=["job_id", "name", "level", "bucket"],
                                        set_={c: stmt.excluded[c] for c in _COLUMNS})
    for level in LEVELS:
        if level != LEVELS[0]:
            wanted = {name: sorted({b >> 1 for b in buckets}) for name, buckets in wanted.items()}
            parts = _stored(session, job_id, level - 1, wanted, 1)
        rows = [{"job_id": job_id, "tenant_id": tenant_id, "name": name, "level": level, "bucket": bucket, **stretch.columns()}
                for (name, bucket), stretch in parts.items()]
        if rows:
            session.execute(upsert, rows)


def rebuild(*, session: Session, tenant_id: str, job_id: str) -> None:
    """Every roll-up of a job from its points, a top-level stretch at a time (for points written
    before roll-ups existed, and for bulk loads that bypass ``metrics.write``)."""
    chunk = 1 << 16  # steps a refresh reads at once
    for name in session.scalars(select(MetricPoint.name).where(MetricPoint.job_id == job_id).distinct()).all():
        lo, hi = session.execute(select(func.min(MetricPoint.step), func.max(MetricPoint.step)).where(
            MetricPoint.job_id == job_id, MetricPoint.name == name)).one()
        for start in range(lo - lo % chunk, hi + 1, chunk):
            refresh(session=session, tenant_id=tenant_id, job_id=job_id, steps={name: range(start, start + chunk, 1 << LEVELS[0])})


def summaries(*, session: Session, tenant_id: str, job_id: str, names: list[str] | None) -> dict[str, Stretch]:
    """Each series of the job summed up whole: its count, first and last point (a few rows a series)."""
    stmt = select(MetricRollup.name, *_STRETCH).where(MetricRollup.job_id == job_id, MetricRollup.tenant_id == tenant_id,
                                                       MetricRollup.level == TOP)
    if names:
        stmt = stmt.where(MetricRollup.name.in_(names))
    return dict(sorted(fold(_row(row[0], row[1:]) for row in session.execute(stmt)).items()))


def stretches(*, session: Session, tenant_id: str, job_id: str, name: str, level: int, width: int, first: int, last: int) -> dict[int, Stretch]:
    """The series summed up per aligned stretch of ``width`` steps (a multiple of ``2**level``),
    for the stretches ``first..last``, from the level-``level`` roll-ups."""
    rows = session.execute(select(MetricRollup.bucket, *_STRETCH).where(
        MetricRollup.job_id == job_id, MetricRollup.tenant_id == tenant_id, MetricRollup.name == name, MetricRollup.level == level,
        MetricRollup.bucket >= first * width >> level, MetricRollup.bucket < (last + 1) * width >> level))
    return fold(_row((row[0] << level) // width, row[1:]) for row in rows)

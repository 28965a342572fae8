"""Service-wide counters and histograms kept in the database, so that what workers on many hosts
observe adds up to one total that any API process can report on ``/metrics``.

Each write is an upsert that adds to one row, inside the transaction that made the event (a job's
claim, its outcome), so a count is exactly the events that committed. A histogram is a row per
bucket (observations in (previous bound, bound]) and a row for the sum; the reader makes them
cumulative. Label values are ids and fixed words (device, state), never a tenant's data.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.db.tables import ServiceStat
from app.core.db.upsert import insert_for


@dataclass(frozen=True)
class Histogram:
    name: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...]  # upper bounds, ascending; +Inf is implied


@dataclass(frozen=True)
class Counter:
    name: str
    help: str
    labels: tuple[str, ...]


QUEUE_WAIT = Histogram("kiln_job_queue_wait_seconds", "From submit to a worker's first start of the job", ("device",),
                       (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600))
DURATION = Histogram("kiln_job_duration_seconds", "A finished job's last attempt, start to outcome", ("device", "state"),
                     (10, 30, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 48 * 3600))
FINISHED = Counter("kiln_jobs_finished_total", "Jobs that reached an outcome, as recorded by their worker", ("device", "state"))
HEARTBEAT_FAILURES = Counter("kiln_heartbeat_failures_total", "Worker heartbeats that failed to reach the database", ())
HISTOGRAMS = (QUEUE_WAIT, DURATION)
COUNTERS = (FINISHED, HEARTBEAT_FAILURES)


def _key(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


def add(session: Session, name: str, labels: dict[str, str], amount: float = 1.0) -> None:
    insert = insert_for(session)
    statement = insert(ServiceStat).values(name=name, labels=_key(labels), value=amount)
    session.execute(statement.on_conflict_do_update(index_elements=["name", "labels"],
                                                    set_={"value": ServiceStat.value + statement.excluded.value}))


def count(session: Session, counter: Counter, labels: dict[str, str], amount: float = 1.0) -> None:
    add(session, counter.name, labels, amount)


def observe(session: Session, histogram: Histogram, labels: dict[str, str], value: float) -> None:
    value = max(0.0, value)
    index = bisect.bisect_left(histogram.buckets, value)
    bound = histogram.buckets[index] if index < len(histogram.buckets) else math.inf
    add(session, f"{histogram.name}_bucket", {**labels, "le": _bound(bound)})
    add(session, f"{histogram.name}_sum", labels, value)


def _bound(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


@dataclass(frozen=True)
class HistogramSeries:
    labels: dict[str, str]
    buckets: list[tuple[str, float]]  # cumulative, ending with +Inf
    sum: float


def read(session: Session) -> tuple[dict[str, list[HistogramSeries]], dict[str, list[tuple[dict[str, str], float]]]]:
    """Every histogram's series (cumulative buckets) and every counter's, by metric name."""
    rows: dict[str, dict[str, float]] = {}
    for name, labels, value in session.execute(select(ServiceStat.name, ServiceStat.labels, ServiceStat.value)):
        rows.setdefault(name, {})[labels] = value
    histograms: dict[str, list[HistogramSeries]] = {}
    for h in HISTOGRAMS:
        series: dict[str, dict[str, float]] = {}
        for key, n in rows.get(f"{h.name}_bucket", {}).items():
            labels = json.loads(key)
            le = labels.pop("le")
            series.setdefault(_key(labels), {})[le] = n
        sums = rows.get(f"{h.name}_sum", {})
        histograms[h.name] = [
            HistogramSeries(json.loads(key), _cumulative(h, per_bucket), sums.get(key, 0.0)) for key, per_bucket in sorted(series.items())
        ]
    counters = {c.name: [(json.loads(key), value) for key, value in sorted(rows.get(c.name, {}).items())] for c in COUNTERS}
    return histograms, counters


def _cumulative(h: Histogram, per_bucket: dict[str, float]) -> list[tuple[str, float]]:
    total, out = 0.0, []
    for bound in [*h.buckets, math.inf]:
        total += per_bucket.get(_bound(bound), 0.0)
        out.append((_bound(bound), total))
    return out

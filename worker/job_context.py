"""The TrainingContext of a real job: metrics, progress, lease and cancel flag through the
database, checkpoints through the artifact store.

The hot loop only appends to a buffer and reads a flag. A background thread wakes every
``heartbeat_seconds`` and, in one transaction, renews the lease, records progress, upserts the
buffered metric points and reads the cancel flag. A failed write (database restarting) keeps the
points for the next beat, so nothing is lost through a short outage; beats that keep failing for
longer than the lease stop the trainer, as the job may be someone else's by then.

Fenced: an attempt that lost its lease writes nothing, anywhere. Metric points are written only in
a transaction whose lease renewal matched, and a checkpoint only right after a renewal that did.
"""

from __future__ import annotations

import io
import logging
import math
import threading
import time
from collections import deque
from typing import Any

import orjson
import torch
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.core import service_stats
from app.core.artifacts import layout
from app.core.artifacts.store import ArtifactStore
from app.core.db.types import utcnow
from app.core.jobs import events, lease
from app.core.jobs import log as job_log
from app.core.jobs import metrics as metric_service
from app.core.jobs.metrics import Point
from app.core.settings import Settings
from worker.resources import peak_memory_bytes, reset_peak_memory

RATE_WINDOW_SECONDS = 60.0

log = logging.getLogger("kiln.worker")


class JobContext:
    def __init__(self, *, settings: Settings, sessions: sessionmaker[Session], store: ArtifactStore, job_id: str, tenant_id: str, worker_id: str, attempt: int):
        self.settings = settings
        self.sessions = sessions
        self.store = store
        self.job_id, self.tenant_id, self.worker_id, self.attempt = job_id, tenant_id, worker_id, attempt
        self._lock = threading.Lock()
        self._points: list[Point] = []
        self._progress: dict[str, int] = {}
        self._step_times: deque[tuple[float, int]] = deque(maxlen=512)  # (monotonic time, step) as progress is set
        self._progress_sent: dict[str, int] = {}  # what the last committed progress event said
        self._progress_pending: dict[str, int] = {}
        self._latest: dict[str, float] = {}
        self._stop: str | None = None
        self.resumed_from_step: int | None = None
        self._checkpoint_step: int | None = None  # the newest checkpoint this attempt wrote
        self._checkpoint_bytes: int | None = None
        self._closing = threading.Event()
        self._failed_beats = 0  # heartbeats that failed since the last one that went through
        self._beat_lock = threading.Lock()  # the heartbeat thread, a flush and a checkpoint's renewal take turns
        self._last_beat = time.monotonic()
        self._thread = threading.Thread(target=self._beat_loop, name=f"heartbeat-{job_id}", daemon=True)

    # -- TrainingContext -------------------------------------------------------------------------

    def report(self, metrics: dict[str, float], *, step: int, epoch: int) -> None:
        now = utcnow()
        # JSON has no NaN: the loop fails a job whose metrics go non-finite; none reaches the database.
        finite = {name: float(value) for name, value in metrics.items() if math.isfinite(value)}
        with self._lock:
            self._points.extend(Point(name, step, epoch, value, now) for name, value in finite.items())
            self._latest.update(finite)
        if "epoch_seconds" in finite:  # the loop's end-of-epoch report
            self.say(epoch_line(epoch, finite))

    def set_progress(self, *, epoch: int, step: int, total_steps: int) -> None:
        self._progress = {"epoch": epoch, "step": step, "total_steps": total_steps}
        self._step_times.append((time.monotonic(), step))

    def position(self) -> str:
        """Where the attempt got to, for its log's last line: ``at step 340 of 1000 (after 4 epochs)``."""
        p = self._progress
        if not p:
            return "before its first step"
        where = f"at step {p['step']} of {p['total_steps']}" if p.get("total_steps") else f"at step {p['step']}"
        epochs = p.get("epoch", 0)  # completed epochs; a batch job has steps only
        return where + (f" (after {epochs} epoch{'s' if epochs != 1 else ''})" if epochs else "")

    def stop_reason(self) -> str | None:
        return self._stop

    def request_stop(self, reason: str) -> None:
        self._stop = self._stop or reason

    def save_checkpoint(self, state: dict[str, Any], *, epoch: int, step: int, metrics: dict[str, float] | None) -> None:
        """Atomic write, right after a renewal of the lease proved it ours (so the write lands well
        inside it); keeps the newest ``checkpoint_keep`` and the best by the monitored metric."""
        if not self.beat() or self._stop == "lease_lost":
            log.warning("job %s: lease not confirmed; checkpoint at step %d not written", self.job_id, step)
            return
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        self.store.write_bytes(layout.step_checkpoint(self.job_id, step), data)
        self._checkpoint_step = step
        for _, old in self._step_checkpoints()[: -self.settings.checkpoint_keep]:
            self.store.delete(old)
        monitored = (metrics or {}).get(self.settings.checkpoint_monitor)
        best = monitored is not None and self._is_best(monitored)
        self.say(f"checkpoint at step {step} (epoch {epoch})" + (f", the best so far by {self.settings.checkpoint_monitor}" if best else ""))
        if best:
            best, best_info = layout.best_checkpoint(self.job_id)
            self.store.write_bytes(best, data)
            self.store.write_bytes(best_info, orjson.dumps(
                {"metric": self.settings.checkpoint_monitor, "value": monitored, "epoch": epoch, "step": step}))
        # What the job's checkpoints take now, for its tenant's storage (sent with the next heartbeat).
        self._checkpoint_bytes = self.store.size(layout.checkpoints_prefix(self.job_id))

    def load_checkpoint(self) -> dict[str, Any] | None:
        checkpoints = self._step_checkpoints()
        if not checkpoints:
            return None
        self.resumed_from_step, key = checkpoints[-1]
        self.say(f"attempt {self.attempt} resumed from the checkpoint at step {self.resumed_from_step}")
        # weights_only: a checkpoint is a file on disk; never run pickled code from it.
        with self.store.local_copy(key) as path:
            return torch.load(path, map_location="cpu", weights_only=True)

    def _step_checkpoints(self) -> list[tuple[int, str]]:
        """(step, key) of every step checkpoint, oldest first."""
        keys = self.store.list(layout.checkpoints_prefix(self.job_id))
        return sorted((step, key) for key in keys if (step := layout.step_of(key)) is not None)

    def say(self, text: str) -> None:
        """A line of the job's log, written now by the training thread (which waits for a store that
        is away, as its checkpoints do), never by the heartbeat, which must go on renewing the lease."""
        write_line(self.sessions, self.store, self.job_id, self.tenant_id, text)

    def _is_best(self, value: float) -> bool:
        _, key = layout.best_checkpoint(self.job_id)
        if not self.store.exists(key):
            return True
        best = orjson.loads(self.store.read_bytes(key))["value"]
        return value < best if self.settings.checkpoint_monitor_mode == "min" else value > best

    # -- heartbeat ------------------------------------------------------------------------------

    def start(self) -> None:
        reset_peak_memory()
        self._last_beat = time.monotonic()
        self._thread.start()

    def flush(self) -> None:
        """Writes what is still buffered, retrying through a short outage; the heartbeat goes on."""
        for delay in (0.2, 0.5, 1, 2, 4, 8):
            if self.beat():
                return
            time.sleep(delay)
        log.error("job %s: could not write final metrics", self.job_id)

    def close(self) -> None:
        """Stops the heartbeat: called once the attempt's outcome is committed, so the lease stays
        renewed while the outcome is being recorded."""
        self._closing.set()
        self._thread.join()

    def _progress_values(self) -> dict[str, float]:
        values: dict[str, float] = dict(self._progress)
        if self._checkpoint_bytes is not None:
            values["checkpoint_bytes"] = self._checkpoint_bytes
        rate = self._step_rate()
        if rate is not None:
            values["steps_per_second"] = rate
        return values

    def _events(self, points: list[Point]) -> list[tuple[str, dict[str, Any]]]:
        """What this beat writes, for the job's event stream: its points, and its progress if it moved."""
        out: list[tuple[str, dict[str, Any]]] = []
        if points:
            out.append(("metric", {"points": [{"name": p.name, "step": p.step, "epoch": p.epoch, "value": p.value} for p in points]}))
        progress = dict(self._progress)
        if progress and progress != self._progress_sent:
            rate = self._step_rate()
            left = progress.get("total_steps", 0) - progress.get("step", 0)
            out.append(("progress", {**progress, "eta_seconds": round(left / rate, 1) if rate else None}))
            self._progress_pending = progress
        return out

    def _step_rate(self) -> float | None:
        """Steps a second over the last ``RATE_WINDOW_SECONDS`` of this attempt (what an ETA is
        drawn from: the recent pace, not one slowed by start-up or a past epoch's evaluation)."""
        samples = list(self._step_times)
        recent = [(t, step) for t, step in samples if t >= samples[-1][0] - RATE_WINDOW_SECONDS] if samples else []
        if len(recent) < 2 or recent[-1][0] - recent[0][0] < 0.5 or recent[-1][1] <= recent[0][1]:
            return None
        return (recent[-1][1] - recent[0][1]) / (recent[-1][0] - recent[0][0])

    def _beat_loop(self) -> None:
        while not self._closing.wait(self.settings.heartbeat_seconds):
            self.beat()

    def beat(self) -> bool:
        """Renews the lease and, only if that matched, writes the buffered points and progress.
        True if the transaction went through (whoever owns the lease)."""
        with self._beat_lock:
            with self._lock:
                points, self._points = self._points, []
                latest = dict(self._latest)
            try:
                with self.sessions() as session:
                    beat = lease.heartbeat(
                        session=session, job_id=self.job_id, worker_id=self.worker_id, attempt=self.attempt,
                        lease_seconds=self.settings.lease_seconds, progress=self._progress_values(), latest_metrics=latest,
                        report={"resumed_from_step": self.resumed_from_step, "checkpoint_step": self._checkpoint_step,
                                "last_step": self._progress.get("step"), "peak_memory_bytes": peak_memory_bytes()},
                    )
                    if beat.still_owner:
                        metric_service.write(session=session, tenant_id=self.tenant_id, job_id=self.job_id, points=points)
                        events.append(session, job_id=self.job_id, tenant_id=self.tenant_id, events=self._events(points))
                        failed = self._failed_beats
                        if failed:  # counted now that the database answers again
                            service_stats.count(session, service_stats.HEARTBEAT_FAILURES, {}, failed)
                        session.commit()
                        self._failed_beats -= failed
                        self._progress_sent = self._progress_pending
                    else:
                        session.rollback()  # someone else's job now: its points are not ours to write
            except SQLAlchemyError:
                self._failed_beats += 1
                with self._lock:
                    self._points[:0] = points
                silent = time.monotonic() - self._last_beat
                log.warning("job %s: heartbeat failed (%.0f s since the last); keeping %d points", self.job_id, silent, len(points),
                            exc_info=True)
                if silent > self.settings.lease_seconds:
                    self.request_stop("lease_lost")  # the lease has expired by now: the job may be someone else's
                return False
            self._last_beat = time.monotonic()
        if not beat.still_owner:
            self.request_stop("lease_lost")
        elif beat.cancel_requested:
            self.request_stop("cancelled")
        return True


def write_line(sessions: sessionmaker[Session], store: ArtifactStore, job_id: str, tenant_id: str, text: str) -> None:
    """A line of the job's log, in its log file and as an event of its stream (the same line, in
    the same order in both: one writer at a time)."""
    line = job_log.line(text)
    with job_log.order:
        try:
            with sessions() as session:
                events.append(session, job_id=job_id, tenant_id=tenant_id, events=[("log", {"line": line})])
                session.commit()
        except SQLAlchemyError:
            log.warning("job %s: a log line missed the event stream (the database did not answer)", job_id, exc_info=True)
        job_log.append(store, job_id, line, stamped=True)


SUMMARY = ("train_loss", "val_loss", "val_accuracy", "d_loss", "g_loss", "reconstruction_error")


def epoch_line(epoch: int, metrics: dict[str, float]) -> str:
    """``epoch 3: train_loss 0.1234, val_loss 0.2345, val_accuracy 0.9611; 2.10 s, 850 samples/s``."""
    shown = ", ".join(f"{name} {metrics[name]:.4g}" for name in SUMMARY if name in metrics)
    seconds = metrics["epoch_seconds"]
    pace = f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s"
    if "samples_per_second" in metrics:
        pace += f", {metrics['samples_per_second']:,.0f} samples/s"
    return f"epoch {epoch}: {shown}; {pace}" if shown else f"epoch {epoch}: {pace}"

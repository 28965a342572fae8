"""One attempt at a job, start to end: claim the lease, run the job's kind (training or batch
inference) through a JobContext, then record the outcome, or hand the job back on shutdown. A task
that cannot claim leaves the job alone; a lease lost on the way records nothing.

A message only says there is work: ``run_next`` claims the job the scheduler says this worker
should run now (``app.core.jobs.scheduling``), whichever job the message named."""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback

import torch
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.core import trained_models, workers
from app.core.artifacts import layout
from app.core.artifacts.configured import open_store
from app.core.artifacts.store import ArtifactStore
from app.core.db.engine import session_factory
from app.core.db.tables import Job
from app.core.errors import JobError, KilnError
from app.core.jobs import lease, log, scheduling
from app.core.jobs.outcome import Outcome
from app.core.queue import Send, wake_worker
from app.core.settings import Settings
from worker import lifecycle
from worker.batch_inference import run_inference
from worker.job_context import JobContext, write_line
from worker.training.config import resolve_device
from worker.training.job import run_training
from worker.training.loop import NonFiniteLoss

logger = logging.getLogger("kiln.worker")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_next(hint: str, settings: Settings, send: Send) -> str | None:
    """The task's work: claims the job this worker should run now and runs it. ``hint`` is the job
    whose message woke it; the state that job was left in, or None if nothing was claimable."""
    sessions = session_factory(settings.database_url)
    me, device = worker_id(), worker_device(settings)
    with sessions() as session:
        # A CPU worker leaves jobs for any device to a GPU worker that is idle now.
        take_any = device == "cuda" or not workers.idle(session=session, device="cuda", alive_seconds=settings.worker_alive_seconds)
        job = scheduling.claim_next(session=session, worker_id=me, device=device, lease_seconds=settings.lease_seconds, take_any=take_any)
        session.commit()
    if not take_any and (job is None or job.id != hint):
        wake_worker(send, hint, "cuda")  # the message may have been for a job an idle GPU should take
    if job is None:
        logger.info("message for job %s: nothing this %s worker may run now (taken, finished, cancelled, or held by a quota)", hint, device)
        return None
    return _run_claimed(job, settings, sessions, me, send)


def run_attempt(job_id: str, settings: Settings, send: Send) -> str | None:
    """Claims this very job, if it is claimable, and runs it (tests, and an operator's "run it now");
    the state it was left in, or None if it was not claimed or was lost."""
    sessions = session_factory(settings.database_url)
    me = worker_id()
    with sessions() as session:
        job = lease.claim(session=session, job_id=job_id, worker_id=me, lease_seconds=settings.lease_seconds)
        session.commit()
    if job is None:
        logger.info("job %s: not claimable (taken, finished, cancelled, or its tenant at its running-jobs quota); skipping", job_id)
        return None
    return _run_claimed(job, settings, sessions, me, send)


def worker_device(settings: Settings) -> str:
    """The queue device this worker serves: cuda where it trains on a CUDA device, else cpu."""
    return "cuda" if resolve_device(settings.device).startswith("cuda") else "cpu"


def _run_claimed(job: Job, settings: Settings, sessions: sessionmaker[Session], me: str, send: Send) -> str | None:
    job_id = job.id
    store = open_store(settings)
    logger.info("job %s: attempt %d on %s", job_id, job.attempt, me)
    _log(sessions, store, job, f"attempt {job.attempt} started on {me}")

    ctx = JobContext(settings=settings, sessions=sessions, store=store, job_id=job_id, tenant_id=job.tenant_id, worker_id=me, attempt=job.attempt)
    ctx.start()
    try:
        return _run_and_record(job, ctx, settings, sessions, store, me, send)
    finally:
        ctx.close()  # only now: the lease stays renewed until the outcome is committed


def _run_and_record(job: Job, ctx: JobContext, settings: Settings, sessions: sessionmaker[Session], store: ArtifactStore, me: str,
                    send: Send) -> str | None:
    job_id = job.id
    lifecycle.register(ctx)
    outcome: Outcome | None
    try:
        if job.kind == "inference":
            outcome = run_inference(job, ctx, store, sessions)
        else:
            outcome = run_training(job.id, job.spec, ctx, store, settings)  # its context logs the resume, each epoch and checkpoint
    except Exception as exc:  # noqa: BLE001 - any error in the job fails it, the worker goes on
        logger.exception("job %s failed", job_id)
        outcome = failure(exc, job_id)
        _log(sessions, store, job, traceback.format_exc())
    finally:
        lifecycle.unregister(ctx)
        ctx.flush()  # every buffered point is in before the outcome says the job is done

    if outcome is None:
        _log(sessions, store, job, f"attempt {job.attempt} stopped: {ctx.stop_reason()}; not recording anything")
        return None
    if outcome.state == "queued":
        return _hand_back(sessions, store, job, me, send)
    state = with_retries(lambda: _record(sessions, store, job, me, outcome, ctx.position()), f"job {job_id}: record outcome")
    if state is not None:
        _wake_next(sessions, send, job.tenant_id)
    return state


def _wake_next(sessions: sessionmaker[Session], send: Send, tenant_id: str) -> None:
    """A job ended: if its tenant's running-jobs quota holds a queued job back, wake that one now
    (the reconciler would, after KILN_REQUEUE_GRACE_SECONDS)."""
    try:
        with sessions() as session:
            waiting = lease.next_waiting(session=session, tenant_id=tenant_id)
        if waiting:
            wake_worker(send, *waiting)
    except Exception:  # noqa: BLE001 - only a shortcut: the reconciler resends it anyway
        logger.warning("could not wake the next job of tenant %s", tenant_id, exc_info=True)


def failure(exc: Exception, job_id: str) -> Outcome:
    """The job's error as its owner sees it: our own messages as written; for anything else the
    type alone, as its text may hold server paths or device details (the log has the traceback)."""
    if isinstance(exc, NonFiniteLoss):
        return Outcome.failed("non_finite_loss", str(exc))
    if isinstance(exc, JobError):
        return Outcome.failed(exc.error_type, exc.message)
    if isinstance(exc, KilnError):  # a domain rule the job broke (say, a batch job's token ids)
        return Outcome.failed(exc.code, exc.message)
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        return Outcome.failed("out_of_memory", "the job ran out of memory on its worker: a smaller batch_size or network needs less")
    return Outcome.failed(type(exc).__name__, f"the job stopped on an unexpected {type(exc).__name__}; "
                                              f"GET /v1/jobs/{job_id}/logs has the traceback")


def with_retries(action, what: str, delays=(0.5, 1, 2, 4, 8, 15, 30)):
    """Rides out a short database outage (a PostgreSQL restart) instead of losing the outcome."""
    for delay in (*delays, None):
        try:
            return action()
        except SQLAlchemyError:
            if delay is None:
                raise
            logger.warning("%s failed; retrying in %s s", what, delay, exc_info=True)
            time.sleep(delay)


def _hand_back(sessions: sessionmaker[Session], store: ArtifactStore, job: Job, me: str, send: Send) -> str | None:
    """Graceful stop: the checkpoint is written; give the job back to the queue now, and wake a
    worker (or, if a cancel was asked for meanwhile, end it cancelled)."""

    lines = {"cancelled": log.line(f"attempt {job.attempt} stopped by worker shutdown; its cancel was asked for, so it ended cancelled"),
             "queued": log.line(f"attempt {job.attempt} stopped by worker shutdown; checkpointed and returned to the queue")}

    def release() -> str | None:
        with sessions() as session:
            state = lease.release(session=session, job_id=job.id, worker_id=me, attempt=job.attempt, log_lines=lines)
            session.commit()
            return state

    state = with_retries(release, f"job {job.id}: release")
    if state is None:
        return None
    log.append(store, job.id, lines[state], stamped=True)
    if state == "queued":
        wake_worker(send, job.id, job.device)
    return state


def _record(sessions: sessionmaker[Session], store: ArtifactStore, job: Job, me: str, outcome: Outcome, position: str) -> str | None:
    """The outcome and the model it made, in one transaction, if this attempt still holds the lease."""
    with sessions() as session:
        if outcome.model is not None:
            trained_models.add(session=session, tenant_id=job.tenant_id, job_id=job.id, saved=outcome.model)
        line = log.line(f"attempt {job.attempt} ended {position}: {outcome.describe()}")
        if not lease.finish(session=session, job_id=job.id, worker_id=me, attempt=job.attempt, outcome=outcome, log_line=line):
            session.rollback()
            logger.warning("job %s: lease lost before the outcome was recorded; leaving it to its new owner", job.id)
            if outcome.model is not None:
                store.delete(layout.model_prefix(outcome.model.model_id))
            return None
        session.commit()
    log.append(store, job.id, line, stamped=True)
    return outcome.state


def _log(sessions: sessionmaker[Session], store: ArtifactStore, job: Job, text: str) -> None:
    """A line of the job's log, in its log file and as an event of its stream (the same line)."""
    write_line(sessions, store, job.id, job.tenant_id, text)

"""The deliveries outbox. A transition writes one row per hook that asked for its event, in the
transition's own transaction (so a delivery exists exactly when the state it tells of committed);
a worker's sender claims rows that are due, sends them, and records each try here.

A claim is a conditional UPDATE on the row's ``next_attempt_at``: of two senders that read the
same row, one moves it and sends; the other's UPDATE matches nothing. A claimed row is due again
after the try's timeout, so a sender that dies mid-try leaves it to another (at least once).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core.db.clock import db_now
from app.core.db.tables import Job, Webhook, WebhookDelivery
from app.core.db.types import utcnow
from app.core.ids import new_id
from app.core.paging import Page, newest_page

KIND_PREFIX = {"train": "job", "inference": "inference_job"}


def on_transition(session: Session, *, job_id: str, tenant_id: str, state: str) -> None:
    """Queues a delivery to every hook of the tenant that asked for this transition."""
    hooks = session.execute(select(Webhook.id, Webhook.events).where(Webhook.tenant_id == tenant_id)).all()
    if not hooks:
        return
    job = session.scalar(select(Job).where(Job.id == job_id))
    event_type = f"{KIND_PREFIX.get(job.kind, 'job')}.{state}"
    wanting = [hook_id for hook_id, events in hooks if event_type in events]
    if not wanting:
        return
    now = utcnow()
    payload = {"type": event_type, "timestamp": now.isoformat().replace("+00:00", "Z"), "data": _job_data(job, state)}
    session.add_all(WebhookDelivery(id=new_id("msg"), webhook_id=hook_id, tenant_id=tenant_id, event_type=event_type, payload=payload,
                                    status="pending", attempts=0, next_attempt_at=now, created_at=now) for hook_id in wanting)
    session.flush()


def _job_data(job: Job, state: str) -> dict[str, Any]:
    data: dict[str, Any] = {"id": job.id, "kind": job.kind, "name": job.name, "state": state, "attempt": job.attempt,
                            "labels": job.spec.get("labels", {}), "model_id": job.model_id, "metrics": job.latest_metrics or {}}
    if job.error_type:
        data["error"] = {"type": job.error_type, "message": job.error_message}
    return data


def claim_due(session: Session, *, limit: int, hold_seconds: float) -> list[tuple[WebhookDelivery, str, str]]:
    """Up to ``limit`` deliveries due now, each with its hook's URL and secret, claimed for
    ``hold_seconds`` (the try's time) and counted as a try. Commits."""
    due = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.next_attempt_at)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= db_now())
        .order_by(WebhookDelivery.next_attempt_at).limit(limit)
    ).all()
    claimed = []
    for delivery_id, seen in due:
        moved = session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id == delivery_id, WebhookDelivery.next_attempt_at == seen,
                                          WebhookDelivery.status == "pending")
            .values(next_attempt_at=db_now(hold_seconds), attempts=WebhookDelivery.attempts + 1)
        ).rowcount
        if moved:
            claimed.append(delivery_id)
    session.commit()
    if not claimed:
        return []
    rows = session.execute(select(WebhookDelivery, Webhook.url, Webhook.secret).join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                           .where(WebhookDelivery.id.in_(claimed))).all()
    return [(delivery, url, secret) for delivery, url, secret in rows]


def delivered(session: Session, *, delivery_id: str, status_code: int) -> None:
    session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                    .values(status="succeeded", delivered_at=db_now(), last_status_code=status_code, last_error=None, next_attempt_at=None))
    session.commit()


def failed_try(session: Session, *, delivery: WebhookDelivery, error: str, status_code: int | None, delays: tuple[float, ...],
               max_age_seconds: float, permanent: bool = False) -> str:
    """Records a failed try; the delivery waits its next delay, or is given up when that would
    take it past ``max_age_seconds`` from its event (or the failure is ``permanent``). Its status."""
    wait = delays[min(delivery.attempts, len(delays)) - 1] if delays else 60.0
    next_at: datetime = utcnow() + timedelta(seconds=wait)
    gives_up = permanent or next_at > delivery.created_at + timedelta(seconds=max_age_seconds)
    status = "failed" if gives_up else "pending"
    session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery.id)
                    .values(status=status, last_error=error[:500], last_status_code=status_code, next_attempt_at=None if gives_up else next_at))
    session.commit()
    return status


def deliveries(*, session: Session, tenant_id: str, webhook_id: str, limit: int, cursor: str | None) -> Page:
    stmt = select(WebhookDelivery).where(WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.webhook_id == webhook_id)
    return newest_page(session, stmt, WebhookDelivery, limit=limit, cursor=cursor)

"""A tenant's webhooks: made with a new signing secret (shown once), listed, deleted."""

from __future__ import annotations

import base64
import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core import scoped
from app.core.db.tables import Webhook
from app.core.errors import InvalidInput, detail, over_limit
from app.core.ids import new_id
from app.core.paging import Page, newest_page
from app.core.webhooks import addresses

# What a hook may ask to hear of: a training job's or a batch-inference job's transitions.
EVENT_TYPES = tuple(f"{kind}.{state}" for kind in ("job", "inference_job") for state in ("running", "succeeded", "failed", "cancelled"))


def new_secret() -> str:
    """Standard Webhooks' form: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def create(*, session: Session, tenant_id: str, url: str, events: list[str], max_webhooks: int, allow_private: bool) -> Webhook:
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise InvalidInput(f"unknown event type {', '.join(unknown)} (known: {', '.join(EVENT_TYPES)})", [detail(["body", "events"], "unknown")])
    try:
        addresses.check(url, allow_private=allow_private)
    except addresses.RefusedAddress as exc:
        raise InvalidInput(f"webhook URL refused: {exc}", [detail(["body", "url"], str(exc))]) from None
    have = session.scalar(select(func.count()).select_from(Webhook).where(Webhook.tenant_id == tenant_id))
    if have >= max_webhooks:
        raise over_limit("webhooks", have + 1, max_webhooks, "KILN_MAX_WEBHOOKS", ["body"])
    hook = Webhook(id=new_id("wh"), tenant_id=tenant_id, url=url, events=sorted(set(events)), secret=new_secret())
    session.add(hook)
    session.flush()
    return hook


def list_hooks(*, session: Session, tenant_id: str, limit: int, cursor: str | None) -> Page:
    return newest_page(session, scoped.owned(Webhook, tenant_id), Webhook, limit=limit, cursor=cursor)


def get(*, session: Session, tenant_id: str, webhook_id: str) -> Webhook:
    return scoped.get(session, Webhook, tenant_id, webhook_id, "webhook")


def delete(*, session: Session, tenant_id: str, webhook_id: str) -> None:
    """The hook and its deliveries, sent or not."""
    session.delete(get(session=session, tenant_id=tenant_id, webhook_id=webhook_id))
    session.flush()

"""Webhooks over REST: a key with the ``train`` scope makes and deletes its tenant's hooks; ``read``
lists them and their deliveries. A hook's signing secret is in the answer to its creation only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.common import PageOut
from app.api.deps import PageDep, ReadCaller, ReadSessionDep, SessionDep, SettingsDep, TrainCaller
from app.api.errors import errors
from app.core.db.tables import Webhook, WebhookDelivery
from app.core.webhooks import hooks, outbox

EventType = Literal[hooks.EVENT_TYPES]  # type: ignore[valid-type]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    # Printable ASCII only, as a URI is (a host in another script is written in its xn-- form).
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://[!-~]+$",
                     description="http(s); private and loopback addresses are refused unless KILN_WEBHOOK_ALLOW_PRIVATE is set")
    events: Annotated[list[EventType], Field(min_length=1, max_length=len(hooks.EVENT_TYPES),
                                             description="job.running, job.succeeded, job.failed, job.cancelled; inference_job.* alike")]


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    created_at: datetime

    @classmethod
    def of(cls, hook: Webhook) -> "WebhookOut":
        return cls(id=hook.id, url=hook.url, events=hook.events, created_at=hook.created_at)


class WebhookCreated(WebhookOut):
    secret: str = Field(description="whsec_…: verifies each delivery's webhook-signature (Standard Webhooks). Shown this once")


class WebhookList(PageOut):
    items: list[WebhookOut]
    next_cursor: str | None


class DeliveryOut(BaseModel):
    id: str = Field(description="the webhook-id header, the same on every try")
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict = Field(description="the body sent: {type, timestamp, data}")

    @classmethod
    def of(cls, d: WebhookDelivery) -> "DeliveryOut":
        return cls(id=d.id, event_type=d.event_type, status=d.status, attempts=d.attempts, last_status_code=d.last_status_code,
                   last_error=d.last_error, next_attempt_at=d.next_attempt_at, created_at=d.created_at, delivered_at=d.delivered_at,
                   payload=d.payload)


class DeliveryList(PageOut):
    items: list[DeliveryOut]
    next_cursor: str | None


router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post("", status_code=201, response_model=WebhookCreated, operation_id="createWebhook", responses=errors(413))
def create_webhook(body: WebhookIn, caller: TrainCaller, session: SessionDep, settings: SettingsDep, response: Response):
    hook = hooks.create(session=session, tenant_id=caller.tenant_id, url=body.url, events=list(body.events),
                        max_webhooks=settings.max_webhooks, allow_private=settings.webhook_allow_private)
    session.commit()
    response.headers["Location"] = f"/v1/webhooks/{hook.id}"
    return WebhookCreated(**WebhookOut.of(hook).model_dump(), secret=hook.secret)


@router.get("", response_model=WebhookList, operation_id="listWebhooks", responses=errors())
def list_webhooks(caller: ReadCaller, session: ReadSessionDep, page: PageDep):
    return WebhookList.of(hooks.list_hooks(session=session, tenant_id=caller.tenant_id, limit=page.limit, cursor=page.cursor))


@router.get("/{webhook_id}", response_model=WebhookOut, operation_id="getWebhook", responses=errors(404))
def get_webhook(webhook_id: str, caller: ReadCaller, session: ReadSessionDep):
    return WebhookOut.of(hooks.get(session=session, tenant_id=caller.tenant_id, webhook_id=webhook_id))


@router.delete("/{webhook_id}", status_code=204, operation_id="deleteWebhook", responses=errors(404))
def delete_webhook(webhook_id: str, caller: TrainCaller, session: SessionDep):
    """The hook and its deliveries; those not yet sent are not sent."""
    hooks.delete(session=session, tenant_id=caller.tenant_id, webhook_id=webhook_id)
    session.commit()
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryList, operation_id="listWebhookDeliveries", responses=errors(404))
def list_deliveries(webhook_id: str, caller: ReadCaller, session: ReadSessionDep, page: PageDep):
    """Newest first: each delivery's status, tries, and the last error or HTTP status."""
    hooks.get(session=session, tenant_id=caller.tenant_id, webhook_id=webhook_id)
    return DeliveryList.of(outbox.deliveries(session=session, tenant_id=caller.tenant_id, webhook_id=webhook_id, limit=page.limit,
                                             cursor=page.cursor))

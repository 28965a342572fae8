"""The ``Idempotency-Key`` header of the create routes (``POST /v1/jobs``, ``/v1/datasets``,
``/v1/inference-jobs``): the rules are in ``app.core.idempotency``; this is their HTTP side."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Header
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core import idempotency
from app.core.settings import Settings

IdempotencyKeyHeader = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=255,
    description="a retry with the same key and body within KILN_IDEMPOTENCY_SECONDS (a day) gets the first answer and creates nothing; "
                "the same key with another body is a 422")]


def answer_again(answer: idempotency.Answer) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} | ({"Location": answer.location} if answer.location else {})
    return JSONResponse(answer.body, status_code=answer.status_code, headers=headers)


class Once:
    """One create under an optional key: ``earlier()`` before the work, ``commit(answer)`` after it."""

    def __init__(self, *, session: Session, settings: Settings, tenant_id: str, route: str, key: str | None):
        self.session, self.key = session, key
        self._where = {"session": session, "tenant_id": tenant_id, "route": route, "key": key, "ttl_seconds": settings.idempotency_seconds}

    def earlier(self, request_fingerprint: str) -> JSONResponse | None:
        if self.key is None:
            return None
        answer = idempotency.earlier(**self._where, request_fingerprint=request_fingerprint)
        return answer_again(answer) if answer else None

    def commit(self, request_fingerprint: str, answer: idempotency.Answer, undo: Callable[[], None] = lambda: None) -> JSONResponse | None:
        """Commits the create with its key; None, or the answer of a request with the same key
        that committed first while this one worked (this one's work undone)."""
        if self.key is not None:
            idempotency.remember(**self._where, request_fingerprint=request_fingerprint, answer=answer)
        try:
            self.session.commit()
        except IntegrityError:
            self.session.rollback()
            undo()
            replay = self.earlier(request_fingerprint)
            if replay is None:
                raise
            return replay
        except BaseException:
            undo()
            raise
        return None

"""What more than one resource answers with: a job's state, its error, its progress."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel

from app.core.db.tables import Job
from app.core.paging import Page

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class ErrorInfo(BaseModel):
    type: str
    message: str


class PageOut(BaseModel):
    """A list answer: ``items`` (each shaped by its schema's ``of``) and the cursor of the next page."""

    @classmethod
    def of(cls, page: Page):
        item = cls.model_fields["items"].annotation.__args__[0]
        return cls(items=[item.of(row) for row in page.items], next_cursor=page.next_cursor)


def finite(metrics: dict[str, float] | None) -> dict[str, float]:
    """Metrics as JSON can carry them: a NaN or infinity (none is written now; old rows may hold one) is left out."""
    return {name: value for name, value in (metrics or {}).items() if isinstance(value, (int, float)) and math.isfinite(value)}


def error_of(job: Job) -> ErrorInfo | None:
    return ErrorInfo(type=job.error_type, message=job.error_message or "") if job.error_type else None


def fraction_done(job: Job) -> float:
    return 1.0 if job.state == "succeeded" else round(job.step / job.total_steps if job.total_steps else 0.0, 4)

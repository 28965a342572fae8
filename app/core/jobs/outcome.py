"""How one attempt of a job ended: the one type an attempt returns and the lease records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.core.model_card import SavedModel

TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class Outcome:
    """A terminal state (with the error, or the model a training attempt made), or ``queued``: the
    job handed back by a worker that is shutting down, to resume from its checkpoint elsewhere."""

    state: Literal["succeeded", "failed", "cancelled", "queued"]
    error: tuple[str, str] | None = None  # (type, message)
    model: SavedModel | None = None

    @classmethod
    def failed(cls, error_type: str, message: str) -> "Outcome":
        return cls("failed", error=(error_type, message))

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def describe(self) -> str:
        """One line for the job's log."""
        if self.state == "cancelled":
            return "cancelled, as asked"
        return self.state + (f" ({self.error[0]}: {self.error[1]})" if self.error else "")

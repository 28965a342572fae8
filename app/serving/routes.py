"""Which version a registered name answers from in this API process: a route per name@selector,
read again every KILN_ALIAS_POLL_SECONDS by the runtime's poller. A move is seen before it takes
effect (KILN_ALIAS_SWITCH_SECONDS after it was made): the new version is loaded and warmed at once
and the route switches at the move's moment. Requests in flight finish on the servable they hold,
so a swap fails nothing.

What a read of the route shows stays true for a while: a move it could not see was made after the
read began, so it takes effect at least KILN_ALIAS_SWITCH_SECONDS after that. A route is trusted
for half of that after its last read began (the other half covers a move's own commit and a read's
length); a request that finds it older (a poller fallen behind a busy event loop or database)
reads it again itself before it answers, so no answer comes from a version the alias has left."""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from app.core.registry import Resolution
from app.serving.loading import Servable


@dataclass
class Target:
    version: int
    servable: Servable  # loaded and warmed before it becomes a target


@dataclass(frozen=True)
class Plan:
    """What a resolution asks of a route at a moment: the version answering now and, while a
    move is pending, the (version, model id) it moves to and when (epoch seconds, the database's clock)."""

    current: tuple[int, str]
    pending: tuple[int, str] | None = None
    effective_at: float | None = None

    @classmethod
    def of(cls, resolution: Resolution, now: float) -> Plan:
        newest = (resolution.version, resolution.model_id)
        effective = resolution.effective_at.timestamp() if resolution.effective_at is not None else None
        if effective is not None and now < effective and resolution.previous is not None:
            return cls(resolution.previous, newest, effective)
        return cls(newest)


@dataclass
class Route:
    current: Target
    used_at: float  # routes no request used for a while are dropped
    confirmed_at: float  # when the last read of it that succeeded began
    pending: Target | None = None
    effective_at: float | None = None  # when pending takes over (epoch seconds, the database's clock)
    retry_at: float = 0.0  # after a read failed, when a request may try again
    reading: anyio.Event | None = None  # set when the read in progress ends: one read at a time

    def answering(self, now: float) -> Target:
        if self.pending is not None and self.effective_at is not None and now >= self.effective_at:
            self.current, self.pending, self.effective_at = self.pending, None, None
        return self.current

    def follows(self, plan: Plan, now: float) -> bool:
        self.answering(now)
        pending = self.pending.version if self.pending is not None else None
        return (self.current.version, pending, self.effective_at) == (
            plan.current[0], plan.pending[0] if plan.pending else None, plan.effective_at)

    def take(self, current: Target, pending: Target | None, effective_at: float | None, confirmed_at: float) -> None:
        """The new plan, all at once (no request sees half of it)."""
        self.current, self.pending, self.effective_at, self.confirmed_at = current, pending, effective_at, confirmed_at

"""Which version a registered name answers from in this API process: a route per name@selector,
refreshed every KILN_ALIAS_POLL_SECONDS by the runtime's poller. A move is seen before it takes
effect (KILN_ALIAS_SWITCH_SECONDS after it was made): the new version is loaded and warmed at once
and the route switches at the move's moment. Requests in flight finish on the servable they hold,
so a swap fails nothing."""

from __future__ import annotations

from dataclasses import dataclass

from app.serving.loading import Servable


@dataclass
class Target:
    version: int
    servable: Servable  # loaded and warmed before it becomes a target


@dataclass
class Route:
    current: Target
    used_at: float  # routes no request used for a while are dropped
    pending: Target | None = None
    effective_at: float | None = None  # when pending takes over (epoch seconds, the database's clock)

    def answering(self, now: float) -> Target:
        if self.pending is not None and self.effective_at is not None and now >= self.effective_at:
            self.current, self.pending, self.effective_at = self.pending, None, None
        return self.current

    def aims_at(self, version: int) -> bool:
        return (self.pending.version if self.pending is not None else self.current.version) == version

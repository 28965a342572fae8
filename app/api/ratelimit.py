"""Rate limits per API key on predict, submits and uploads, with the ``limits`` library.

Each limit is a ``KILN_RATE_LIMIT_*`` setting in its notation: ``"5000/second"``, or several
windows at once, ``"20/second;600/minute"`` (a burst of 20 in any second, 600 a minute in all).
An empty setting turns that limit off. The sliding-window-counter strategy keeps two counters per
key and window: constant memory, one round trip to the store per window.

Where the counters live: Redis when the broker is Redis, so every API process shares them; with
the embedded default, in the process (``kiln up`` runs one API process; N processes on the
embedded default would each allow the limit). ``KILN_RATE_LIMIT_STORAGE_URL`` names another store.
If the store is down, requests go through (logged): a limiter must not turn a Redis outage into
an outage of predict.

A trip to Redis per request would cost predict a third of its throughput (bench/predict_load.py),
so a process takes hits from the shared window in blocks: ``amount // 100`` at a time (at most
100), counted down locally for at most a tenth of the window. A limit under 200 a window takes
one hit at a time and is exact; a larger one may refuse up to a block per process early, never
let more through. Near the limit, blocks shrink to single hits.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from app.core.errors import TooManyRequests
from app.core.settings import Settings

log = logging.getLogger("kiln.api")

# What is limited, and the setting of each.
LIMITED = {"predict": "KILN_RATE_LIMIT_PREDICT", "submit": "KILN_RATE_LIMIT_SUBMIT", "upload": "KILN_RATE_LIMIT_UPLOAD"}
WARN_EVERY_SECONDS = 60.0
MAX_BLOCK = 100


def storage_url(settings: Settings) -> tuple[str, dict]:
    """The counters' store, and its options: Redis through redis-py (Kiln's own Redis client)."""
    url = settings.rate_limit_storage_url
    if not url and settings.broker_url.startswith(("redis://", "rediss://")):
        url = "async+" + settings.broker_url
    if not url:
        return "async+memory://", {}
    return url, ({"implementation": "redispy"} if url.startswith("async+redis") else {})


def block_size(item: RateLimitItem) -> int:
    return max(1, min(MAX_BLOCK, item.amount // 100))


@dataclass
class _Block:
    """Hits this process took from the shared window and has not used yet."""

    left: int
    until: float  # monotonic: unused hits are dropped then
    remaining: int  # the window's remaining count when the block was taken (the caller may spend it and ``left``)
    reset_at: float  # wall clock


class RateLimiter:
    def __init__(self, settings: Settings):
        self.items: dict[str, list[RateLimitItem]] = {
            name: parse_many(getattr(settings, f"rate_limit_{name}")) for name in LIMITED if getattr(settings, f"rate_limit_{name}")
        }
        url, options = storage_url(settings)
        self.storage = storage_from_string(url, wrap_exceptions=True, **options)
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)
        self._blocks: dict[tuple[str, str, int], _Block] = {}
        self._refills: dict[tuple[str, str, int], asyncio.Lock] = {}
        self._warned_at = -math.inf

    async def hit(self, name: str, key_id: str) -> dict[str, str]:
        """Counts one request of ``key_id`` against the ``name`` limit. Returns the ``RateLimit-*``
        headers of its tightest window; raises a 429 (with ``Retry-After``) when a window is full."""
        items = self.items.get(name)
        if not items:
            return {}
        try:
            headers: dict[str, str] = {}
            tightest = math.inf
            for index, item in enumerate(items):
                block = await self._take(name, key_id, index, item)
                reset = max(0, math.ceil(block.reset_at - time.time()))
                if block.left < 0:
                    raise TooManyRequests(
                        f"rate limit of {item} for {name} requests of this API key reached ({LIMITED[name]}); retry in {reset} s",
                        headers={**_headers(item, 0, reset), "Retry-After": str(max(1, reset))},
                    )
                remaining = max(0, block.remaining + block.left)
                if remaining < tightest:
                    tightest, headers = remaining, _headers(item, remaining, reset)
            return headers
        except TooManyRequests:
            raise
        except Exception:  # noqa: BLE001 - the store is down: let the request through, say so now and then
            now = time.monotonic()
            if now - self._warned_at > WARN_EVERY_SECONDS:
                self._warned_at = now
                log.warning("rate-limit store unreachable; requests go through unlimited", exc_info=True)
            return {}

    async def _take(self, name: str, key_id: str, index: int, item: RateLimitItem) -> _Block:
        """One hit, from this process's block if it has one left; else a new block (or a single hit)
        from the shared window. A block with ``left == -1`` says the window is full."""
        slot = (name, key_id, index)
        block = self._spend(slot)
        if block is not None:
            return block
        # One refill at a time per key and window: requests that arrive meanwhile wait for it and
        # spend its block, instead of each taking a block of its own.
        async with self._refills.setdefault(slot, asyncio.Lock()):
            return self._spend(slot) or await self._refill(slot, name, key_id, item)

    def _spend(self, slot: tuple[str, str, int]) -> _Block | None:
        block = self._blocks.get(slot)
        if block is not None and block.left > 0 and time.monotonic() < block.until:
            block.left -= 1
            return block
        return None

    async def _refill(self, slot: tuple[str, str, int], name: str, key_id: str, item: RateLimitItem) -> _Block:
        now = time.monotonic()
        for cost in dict.fromkeys((block_size(item), 1)):
            if await self.strategy.hit(item, name, key_id, cost=cost):
                stats = await self.strategy.get_window_stats(item, name, key_id)
                block = _Block(left=cost - 1, until=now + item.get_expiry() / 10, remaining=stats.remaining, reset_at=stats.reset_time)
                self._blocks[slot] = block
                return block
        stats = await self.strategy.get_window_stats(item, name, key_id)
        self._blocks.pop(slot, None)
        return _Block(left=-1, until=now, remaining=0, reset_at=stats.reset_time)


def _headers(item: RateLimitItem, remaining: int, reset: int) -> dict[str, str]:
    return {"RateLimit-Limit": str(item.amount), "RateLimit-Remaining": str(remaining), "RateLimit-Reset": str(reset)}

"""The rate limiter itself, against its real stores: hits taken from the shared window in blocks
never let more through than the limit, across processes sharing Redis; a store that is down lets
requests through."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from app.api.ratelimit import RateLimiter, block_size
from app.core.errors import TooManyRequests
from app.core.settings import Settings


def limiter(tmp_path, limit: str, store: str) -> RateLimiter:
    return RateLimiter(Settings(data_dir=tmp_path, rate_limit_predict=limit, rate_limit_storage_url=store))


async def hammer(limiters: list[RateLimiter], key: str, requests: int, concurrency: int = 32) -> list[dict | None]:
    """``requests`` hits, ``concurrency`` at a time, spread over the limiters (processes)."""
    answers: list[dict | None] = []

    async def client(i: int) -> None:
        for _ in range(requests // concurrency):
            try:
                answers.append(await limiters[i % len(limiters)].hit("predict", key))
            except TooManyRequests:
                answers.append(None)

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return answers


@pytest.mark.parametrize("limit", ["150/minute", "1000/minute", "50000/minute"])
def test_two_processes_sharing_redis_let_through_exactly_the_limit(tmp_path, redis_url, limit):
    store = "async+" + redis_url
    processes = [limiter(tmp_path, limit, store), limiter(tmp_path, limit, store)]
    amount = int(limit.split("/")[0])
    answers = asyncio.run(hammer(processes, secrets.token_hex(6), requests=amount + 640))
    allowed = sum(a is not None for a in answers)
    # Blocks never let more through; a process may leave at most one block unspent when refused.
    assert amount - 2 * block_size(processes[0].items["predict"][0]) < allowed <= amount


def test_the_headers_count_down_and_a_refusal_says_when_to_come_back(tmp_path):
    one = limiter(tmp_path, "3/minute", "async+memory://")

    async def run():
        seen = [await one.hit("predict", "k") for _ in range(3)]
        with pytest.raises(TooManyRequests) as refused:
            await one.hit("predict", "k")
        return seen, refused.value

    seen, refused = asyncio.run(run())
    assert [h["RateLimit-Remaining"] for h in seen] == ["2", "1", "0"]
    assert all(h["RateLimit-Limit"] == "3" for h in seen)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60 and "KILN_RATE_LIMIT_PREDICT" in refused.message


def test_a_store_that_is_down_lets_requests_through(tmp_path):
    down = limiter(tmp_path, "1/minute", "async+redis://127.0.0.1:1/0")
    answers = asyncio.run(hammer([down], "k", requests=4, concurrency=2))
    assert answers == [{}] * 4  # unlimited, and no headers that would claim otherwise

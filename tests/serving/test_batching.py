"""The micro-batcher's rules, on a real event loop and a real forward thread running numpy."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.serving.batching import BatchPolicy, DeadlineExceeded, MicroBatcher, Overloaded


class Recorder:
    """A "model" that doubles its input and records the batch sizes it was called with."""

    def __init__(self, seconds: float = 0.0):
        self.sizes: list[int] = []
        self.seconds = seconds
        self.threads: set[str] = set()

    def __call__(self, x: np.ndarray, extra):
        self.sizes.append(len(x))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.seconds)
        out = x * 2
        return out if extra is None else out + extra[:, None]


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def executor():
    with ThreadPoolExecutor(1, thread_name_prefix="forward") as pool:
        yield pool


def test_concurrent_requests_share_forward_passes_and_each_gets_its_own_rows(executor):
    model = Recorder(seconds=0.01)

    async def main():
        batcher = MicroBatcher(model, executor, BatchPolicy(max_batch_size=8, max_delay_ms=20))
        inputs = [np.full((1, 3), i, dtype=np.float32) for i in range(20)]
        outs = await asyncio.gather(*(batcher.submit(x) for x in inputs))
        return inputs, outs

    inputs, outs = run(main())
    for x, out in zip(inputs, outs):
        assert np.array_equal(out, x * 2)
    assert sum(model.sizes) == 20 and max(model.sizes) <= 8 and len(model.sizes) <= 4
    assert model.threads == {"forward_0"}  # never the event loop's thread


def test_a_request_is_never_split_and_a_big_one_runs_alone(executor):
    model = Recorder()

    async def main():
        batcher = MicroBatcher(model, executor, BatchPolicy(max_batch_size=4, max_delay_ms=20))
        return await asyncio.gather(batcher.submit(np.ones((3, 2))), batcher.submit(np.ones((10, 2))), batcher.submit(np.ones((2, 2))))

    outs = run(main())
    assert [len(o) for o in outs] == [3, 10, 2]
    assert model.sizes == [3, 10, 2]  # 3 + 10 and 3 + 2 would each pass the limit of 4


def test_an_idle_model_waits_at_most_the_delay_for_company(executor):
    model = Recorder()

    async def main():
        batcher = MicroBatcher(model, executor, BatchPolicy(max_batch_size=64, max_delay_ms=50))
        start = time.monotonic()
        await batcher.submit(np.ones((1, 2)))
        return time.monotonic() - start

    waited = run(main())
    assert 0.045 <= waited < 1.0


def test_a_full_batch_goes_without_waiting_for_the_delay(executor):
    model = Recorder()

    async def main():
        batcher = MicroBatcher(model, executor, BatchPolicy(max_batch_size=4, max_delay_ms=10_000))
        start = time.monotonic()
        await asyncio.gather(*(batcher.submit(np.ones((1, 2))) for _ in range(4)))
        return time.monotonic() - start

    assert run(main()) < 5
    assert model.sizes == [4]


def test_extra_per_sample_values_travel_with_their_samples(executor):
    model = Recorder()

    async def main():
        batcher = MicroBatcher(model, executor, BatchPolicy(max_batch_size=8, max_delay_ms=20))
        return await asyncio.gather(
            batcher.submit(np.zeros((2, 1)), np.array([1, 2])), batcher.submit(np.zeros((1, 1)), np.array([7])))

    a, b = run(main())
    assert a.ravel().tolist() == [1, 2] and b.ravel().tolist() == [7]


def test_past_the_queue_bound_a_request_is_refused(executor):
    async def main():
        batcher = MicroBatcher(Recorder(), executor, BatchPolicy(max_batch_size=64, max_delay_ms=200, max_queue=3))
        first = asyncio.ensure_future(batcher.submit(np.ones((3, 1))))
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded):
            await batcher.submit(np.ones((1, 1)))
        return await first

    assert len(run(main())) == 3


def test_a_request_past_its_deadline_is_dropped_and_the_rest_still_answered(executor):
    model = Recorder()

    async def main():
        batcher = MicroBatcher(model, executor, BatchPolicy(max_batch_size=64, max_delay_ms=300, timeout_s=0.05))
        with pytest.raises(DeadlineExceeded):
            await batcher.submit(np.ones((1, 1)))
        batcher.policy = BatchPolicy(max_batch_size=64, max_delay_ms=1, timeout_s=5)
        return await batcher.submit(np.full((1, 1), 3.0))

    out = run(main())
    assert out.tolist() == [[6.0]]
    assert sum(model.sizes) == 1  # the expired request never reached the model


def test_a_failing_forward_fails_its_batch_and_the_batcher_goes_on(executor):
    calls = []

    def flaky(x, extra):
        calls.append(len(x))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return x

    async def main():
        batcher = MicroBatcher(flaky, executor, BatchPolicy(max_batch_size=8, max_delay_ms=1))
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit(np.ones((1, 1)))
        return await batcher.submit(np.ones((2, 1)))

    assert len(run(main())) == 2

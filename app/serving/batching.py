"""Dynamic micro-batching: concurrent requests for one model share one forward pass.

A request hands in its samples and awaits a future. One collector task per model takes what is
waiting, up to ``max_batch_size`` samples, waiting at most ``max_delay_ms`` after the first for
more to arrive, runs the batch on the forward thread and hands each request its slice back. While a
batch runs, new requests queue up and form the next batch at once: the delay only costs anything
when the model is idle. A request is never split; one larger than ``max_batch_size`` runs alone.

Bounded: past ``max_queue`` waiting samples a request is refused (503), and a request that waits
past its deadline is answered 504 and dropped from the queue, so no socket hangs and no backlog
grows without limit. Pure asyncio and numpy; what a batch runs is handed in.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from app.serving import telemetry


class Overloaded(Exception):
    """The model's queue is full: come back later."""


class DeadlineExceeded(Exception):
    """The request waited past its deadline."""


def _expire(future: asyncio.Future, seconds: float) -> None:
    if not future.done():
        future.set_exception(DeadlineExceeded(f"no answer within {seconds:g} s"))


@dataclass
class BatchPolicy:
    max_batch_size: int = 32
    max_delay_ms: float = 2.0
    max_queue: int = 1024
    timeout_s: float = 30.0


@dataclass
class _Pending:
    x: np.ndarray
    extra: np.ndarray | None
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)

    @property
    def n(self) -> int:
        return len(self.x)


# run(x, extra) -> per-sample outputs (first axis = samples); runs on the forward thread.
RunBatch = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


class MicroBatcher:
    def __init__(self, run: RunBatch, executor: Executor, policy: BatchPolicy):
        self.run = run
        self.executor = executor
        self.policy = policy
        self._waiting: deque[_Pending] = deque()
        self._waiting_samples = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def submit(self, x: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """The outputs for ``x`` (and per-sample ``extra``, e.g. sequence lengths)."""
        if self._waiting_samples + len(x) > self.policy.max_queue and self._waiting:
            raise Overloaded(f"{self._waiting_samples} samples already waiting for this model (limit {self.policy.max_queue})")
        loop = asyncio.get_running_loop()
        pending = _Pending(x, extra, loop.create_future())
        self._waiting.append(pending)
        self._waiting_samples += pending.n
        self._ensure_collector()
        self._wakeup.set()
        # A plain timer rather than wait_for: no task or shield per request on the hot path.
        deadline = loop.call_later(self.policy.timeout_s, _expire, pending.future, self.policy.timeout_s)
        try:
            return await pending.future  # a future that expired is skipped by the collector
        finally:
            deadline.cancel()

    def _ensure_collector(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._collect())

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._drop_abandoned_head()
            if not self._waiting:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # Re-read each time round: the head may have given up, and the policy may have changed.
            left = self._waiting[0].arrived + self.policy.max_delay_ms / 1000 - time.monotonic()
            if self._waiting_samples < self.policy.max_batch_size and left > 0:
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), left)
                except asyncio.TimeoutError:
                    pass
                continue
            batch = self._take()
            if batch:
                await self._run(loop, batch)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        x = np.concatenate([p.x for p in batch]) if len(batch) > 1 else batch[0].x
        extra = None
        if batch[0].extra is not None:
            extra = np.concatenate([p.extra for p in batch]) if len(batch) > 1 else batch[0].extra
        telemetry.forward_pass(len(x))
        try:
            out = await loop.run_in_executor(self.executor, self.run, x, extra)
        except Exception as exc:  # noqa: BLE001 - each request of the batch gets the error
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        start = 0
        for p in batch:
            if not p.future.done():
                p.future.set_result(out[start:start + p.n])
            start += p.n

    def _drop_abandoned_head(self) -> None:
        while self._waiting and self._waiting[0].future.done():  # its caller gave up (deadline)
            self._waiting_samples -= self._waiting.popleft().n

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        size = 0
        while self._waiting:
            head = self._waiting[0]
            if head.future.done():  # its caller gave up (deadline): drop it
                self._waiting.popleft()
                self._waiting_samples -= head.n
                continue
            if batch and size + head.n > self.policy.max_batch_size:
                break
            self._waiting.popleft()
            self._waiting_samples -= head.n
            batch.append(head)
            size += head.n
        return batch

    @property
    def waiting_samples(self) -> int:
        return self._waiting_samples

"""A small time-bounded cache for the hot path: API keys and model records, read on every predict
request, looked up in the database at most once per ``ttl_seconds`` per process."""

from __future__ import annotations

import threading
import time
from typing import Generic, Hashable, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    def __init__(self, ttl_seconds: float, max_entries: int = 10_000):
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._items: dict[Hashable, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def put(self, key: Hashable, value: V) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._items) >= self.max_entries:
                now = time.monotonic()
                self._items = {k: v for k, v in self._items.items() if v[0] >= now}
                if len(self._items) >= self.max_entries:
                    self._items.clear()
            self._items[key] = (time.monotonic() + self.ttl, value)

    def drop(self, key: Hashable) -> None:
        with self._lock:
            self._items.pop(key, None)

    def drop_values(self, predicate) -> None:
        """Forgets every entry whose value matches (a revoked key's caller, whatever its secret)."""
        with self._lock:
            self._items = {k: v for k, v in self._items.items() if not predicate(v[1])}

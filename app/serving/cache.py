"""The models an API process holds: loaded once (with a warm-up pass) however many requests ask
at once, least recently used evicted past a byte budget."""

from __future__ import annotations

import threading
from collections import OrderedDict

from app.core.artifacts.store import ArtifactStore
from app.serving import telemetry
from app.serving.forward import warm_up
from app.serving.loading import LoadedModel, Servable, load


class ModelCache:
    """LRU by bytes. Concurrent first requests for one model load it once."""

    def __init__(self, store: ArtifactStore, max_bytes: int):
        self.store = store
        self.max_bytes = max_bytes
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._models)

    def cached(self, servable_id: str) -> LoadedModel | None:
        """The model if it is loaded, without loading it (the event loop's non-blocking path)."""
        with self._lock:
            loaded = self._models.get(servable_id)
            if loaded is not None:
                self._models.move_to_end(servable_id)
            return loaded

    def get(self, servable: Servable) -> LoadedModel:
        with self._lock:
            if servable.id in self._models:
                self._models.move_to_end(servable.id)
                return self._models[servable.id]
            load_lock = self._loading.setdefault(servable.id, threading.Lock())
        with load_lock:
            with self._lock:
                if servable.id in self._models:
                    return self._models[servable.id]
            loaded = load(self.store, servable)
            warm_up(loaded)
            with self._lock:
                self._models[servable.id] = loaded
                self._loading.pop(servable.id, None)
                self._evict()
            return loaded

    def _evict(self) -> None:
        total, evicted = sum(m.nbytes for m in self._models.values()), 0
        while total > self.max_bytes and len(self._models) > 1:
            _, dropped = self._models.popitem(last=False)
            total -= dropped.nbytes
            evicted += 1
        telemetry.cache_changed(total, evicted)

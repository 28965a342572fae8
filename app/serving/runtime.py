"""Online inference in one API process: which weights answer a request (cached lookups), the
model cache, one micro-batcher per model, and each endpoint's path through them. Everything a
request asks of serving enters here once.

Scale by processes (``kiln api --workers N``), one torch thread each: every process has its own
cache and batchers. Forward passes run on one thread per process, off the event loop.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
from anyio import to_thread
from sqlalchemy.orm import Session, sessionmaker

from app.core import images, trained_models
from app.core.artifacts.store import ArtifactStore
from app.core.db.engine import read_only
from app.core.errors import GatewayTimeout, NotFound, Unavailable, over_limit
from app.core.jobs import service as job_service
from app.core.settings import Settings
from app.core.ttlcache import TTLCache
from app.serving import decode, encode, export, forward
from app.serving.batching import BatchPolicy, DeadlineExceeded, MicroBatcher, Overloaded
from app.serving.cache import ModelCache
from app.serving.loading import LoadedModel, Servable, servable_checkpoint, servable_model

# Reads a request's samples (and sequence lengths) once the servable is known.
ReadSamples = Callable[[Servable], Awaitable[tuple[np.ndarray, np.ndarray | None]]]


class ServingRuntime:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], store: ArtifactStore):
        self.settings = settings
        self.sessions = sessions
        self.cache = ModelCache(store, settings.model_cache_bytes)
        # One forward thread: with one torch thread per process, two forwards at once only contend.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kiln-forward")
        self.limits = decode.Limits.of(settings)
        self.policy = BatchPolicy(
            max_batch_size=settings.predict_max_batch, max_delay_ms=settings.predict_max_delay_ms,
            max_queue=settings.predict_max_queue, timeout_s=settings.predict_timeout_seconds,
        )
        # Which weights answer (tenant, id, latest?): trusted for KILN_MODEL_RECORD_CACHE_SECONDS, so
        # the predict hot path reads no database.
        self._servables: TTLCache[Servable] = TTLCache(settings.model_record_cache_seconds)
        self._batchers: dict[str, tuple[LoadedModel, MicroBatcher]] = {}

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- which weights answer ----------------------------------------------------------------------

    async def servable(self, tenant_id: str, ref: str, *, latest: bool = False) -> Servable:
        """A model of the tenant's; with ``latest``, ``ref`` may also be a training job's id, and a
        job without a model yet answers from its newest checkpoint, even while it runs."""
        key = (tenant_id, ref, latest)
        servable = self._servables.get(key)
        if servable is None:
            servable = await to_thread.run_sync(self._read_servable, tenant_id, ref, latest)
            self._servables.put(key, servable)
        return servable

    def _read_servable(self, tenant_id: str, ref: str, latest: bool) -> Servable:
        with read_only(self.sessions()) as session:
            if not latest:
                return servable_model(trained_models.get(session=session, tenant_id=tenant_id, model_id=ref))
            job = job_service.find(session=session, tenant_id=tenant_id, job_id=ref)
            model_id = job.model_id if job is not None and job.model_id else ref
            model = trained_models.find(session=session, tenant_id=tenant_id, model_id=model_id)
            if model is not None:
                return servable_model(model)
            if job is None:
                raise NotFound(f"no model or training job {ref!r}")
            return servable_checkpoint(self.cache.store, job)

    def forget(self, tenant_id: str, ref: str) -> None:
        """Drops what this process remembers of ``ref`` (new serving options, a rotated checkpoint)."""
        for latest in (False, True):
            self._servables.drop((tenant_id, ref, latest))

    async def loaded(self, servable: Servable) -> LoadedModel:
        """The model from the cache; a first request loads it on a pool thread (once, however many wait)."""
        return self.cache.cached(servable.id) or await to_thread.run_sync(self.cache.get, servable)

    # -- predict -------------------------------------------------------------------------------------

    async def predict(self, tenant_id: str, ref: str, *, latest: bool, read_samples: ReadSamples, top_k: int | None) -> tuple[str, bytes]:
        """The id of the weights that answered, and the JSON answer for the request's samples."""
        servable = await self.servable(tenant_id, ref, latest=latest)
        x, lengths = await read_samples(servable)
        top_k = decode.top_k(top_k, servable) if servable.task == "classify" else top_k
        try:
            probs = await self._probabilities(servable, x, lengths, answer_factor=2 if top_k else 1)
        except FileNotFoundError:
            if not latest:
                raise
            # The checkpoint was rotated out since it was looked up: look again, once.
            self.forget(tenant_id, ref)
            servable = await self.servable(tenant_id, ref, latest=True)
            probs = await self._probabilities(servable, x, lengths, answer_factor=2 if top_k else 1)
        return servable.id, encode.predictions(probs, servable.card.class_names, top_k)

    async def classify(self, servable: Servable, x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
        """Each sample's class probabilities, through the model's micro-batcher: the Open Inference
        Protocol's infer, which shapes its own answer."""
        return await self._probabilities(servable, x, lengths, answer_factor=2)

    def _check_answer(self, numbers: int, what: str) -> None:
        """Every answer is bounded, and refused before it is computed."""
        if numbers > self.settings.max_response_elements:
            raise over_limit(f"the numbers {what}", numbers, self.settings.max_response_elements, "KILN_MAX_RESPONSE_ELEMENTS")

    async def _probabilities(self, servable: Servable, x: np.ndarray, lengths: np.ndarray | None, *, answer_factor: int) -> np.ndarray:
        servable.require("classify", "predict")
        self._check_answer(len(x) * len(servable.card.class_names) * answer_factor, f"an answer for {len(x)} samples holds")
        if servable.takes_lengths and lengths is None:
            lengths = decode.sequence_lengths(None, x)
        loaded = await self.loaded(servable)
        try:
            probs = await self._batcher(servable, loaded).submit(x, lengths)
        except Overloaded as exc:
            raise Unavailable(f"model {servable.id} is over capacity: {exc}; retry shortly", headers={"Retry-After": "1"}) from None
        except DeadlineExceeded as exc:
            raise GatewayTimeout(f"model {servable.id} did not answer in time: {exc}") from None
        return probs

    def policy_for(self, servable: Servable) -> BatchPolicy:
        """The model's overrides over the settings' defaults. KILN_PREDICT_MAX_BATCH=1 turns batching
        off for every model, overrides included: it is the switch for comparing with and without."""
        overrides = servable.serving or {}
        if self.policy.max_batch_size == 1 or not overrides:
            return self.policy
        return replace(
            self.policy,
            max_batch_size=overrides.get("max_batch_size", self.policy.max_batch_size),
            max_delay_ms=overrides.get("max_delay_ms", self.policy.max_delay_ms),
        )

    def _batcher(self, servable: Servable, loaded: LoadedModel) -> MicroBatcher:
        entry = self._batchers.get(servable.id)
        if entry is None or entry[0] is not loaded:  # new, or the model was evicted and loaded again
            if len(self._batchers) > 4 * max(1, len(self.cache)):
                self._drop_idle_batchers()
            entry = (loaded, MicroBatcher(partial(forward.probabilities, loaded), self.executor, self.policy_for(servable)))
            self._batchers[servable.id] = entry
        else:
            entry[1].policy = self.policy_for(servable)  # the servable may carry new overrides
        return entry[1]

    def _drop_idle_batchers(self) -> None:
        for servable_id, (_, batcher) in list(self._batchers.items()):
            if not batcher.waiting_samples and self.cache.cached(servable_id) is None:
                del self._batchers[servable_id]

    # -- the other endpoints: blocking, called on a worker thread ----------------------------------

    def generate(self, servable: Servable, n: int, seed: int | None, *, png: bool) -> bytes | list[Any]:
        """A GAN's ``n`` samples in raw units: as nested lists, or drawn as one PNG grid."""
        servable.require("generate", "generate")
        self._check_answer(n * math.prod(servable.pre.sample_shape), f"{n} generated samples hold")
        samples = forward.generate(self.cache.get(servable), n, seed)
        return images.png_grid(samples, 1.0 / servable.pre.scale) if png else samples.tolist()

    def transform(self, servable: Servable, inputs: list[Any]) -> dict[str, Any]:
        """An RBM's hidden features and one-step reconstructions of the samples."""
        servable.require("reconstruct", "transform")
        per_sample = int(servable.card.params.get("hidden", 0)) + math.prod(servable.pre.sample_shape)
        self._check_answer(len(inputs) * per_sample, f"the features and reconstructions of {len(inputs)} samples hold")
        x = decode.samples(inputs, servable, self.limits)
        features, reconstructions = forward.transform(self.cache.get(servable), x)
        return {"features": features.tolist(), "reconstructions": reconstructions.tolist()}

    def export(self, servable: Servable, fmt: str) -> str:
        """The artifact key of the model as one file of ``fmt``, built on first ask."""
        return export.export_key(self.cache, servable, fmt)

"""Online inference in one API process: which weights answer a request (cached lookups), the
model cache, one micro-batcher per model, and each endpoint's path through them. Everything a
request asks of serving enters here once.

Scale by processes (``kiln api --workers N``), one torch thread each: every process has its own
cache and batchers. Forward passes run on one thread per process, off the event loop.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import Any

import anyio
import numpy as np
from anyio import to_thread
from sqlalchemy.orm import Session, sessionmaker

from app.core import images, registry, tenants, trained_models
from app.core.artifacts.store import ArtifactStore
from app.core.db.engine import read_only
from app.core.errors import GatewayTimeout, KilnError, NotFound, Unavailable, over_limit
from app.core.jobs import service as job_service
from app.core.settings import Settings
from app.core.ttlcache import TTLCache
from app.serving import decode, encode, export, forward
from app.serving.batching import BatchPolicy, DeadlineExceeded, MicroBatcher, Overloaded
from app.serving.cache import ModelCache
from app.serving.loading import LoadedModel, Servable, servable_checkpoint, servable_model
from app.serving.routes import Plan, Route, Target

ID_PREFIXES = ("mdl_", "job_")  # a model's or a job's id; anything else is a registered name
IDLE_ROUTE_SECONDS = 600.0  # a route no request used this long stops being polled
log = logging.getLogger("kiln.serving")

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
        self._routes: dict[tuple[str, str, str | None], Route] = {}  # (tenant, name, selector) -> what answers
        # How long a read of a route is trusted (routes.py says why half the switch delay).
        self._route_trust_seconds = settings.alias_switch_seconds / 2

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- which weights answer ----------------------------------------------------------------------

    async def servable(self, tenant_id: str, ref: str, *, latest: bool = False) -> Servable:
        """A model of the tenant's: by id, or a registered name (``name``, ``name@3``,
        ``name@production``); with ``latest``, ``ref`` may also be a training job's id, and a job
        without a model yet answers from its newest checkpoint, even while it runs."""
        if not ref.startswith(ID_PREFIXES):
            name, _, selector = ref.partition("@")
            return (await self.routed(tenant_id, name, selector or None)).servable
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

    # -- registered names: routes, moved without downtime -----------------------------------------

    async def routed(self, tenant_id: str, name: str, selector: str | None) -> Target:
        key = (tenant_id, name, selector)
        route = self._routes.get(key)
        if route is None:
            started = time.time()
            resolution = await to_thread.run_sync(self._resolve, key)
            route = self._routes.setdefault(key, await self._route_of(tenant_id, resolution, started))
        elif time.time() - route.confirmed_at > self._route_trust_seconds and time.time() >= route.retry_at:
            await self._confirm(key, route)
        now = time.time()
        route.used_at = now
        return route.answering(now)

    async def registered_versions(self, tenant_id: str, name: str) -> list[int]:
        """Every version of a registered name (the protocol's model metadata lists them)."""
        resolution = await to_thread.run_sync(self._resolve, (tenant_id, name, None))
        return [version for version, _ in resolution.versions]

    def _resolve(self, key: tuple[str, str, str | None]) -> registry.Resolution:
        tenant_id, name, selector = key
        with read_only(self.sessions()) as session:
            return registry.resolve(session=session, tenant_id=tenant_id, name=name, selector=selector)

    async def _target(self, tenant_id: str, name: str, version: int, model_id: str) -> Target:
        """A version's servable, loaded and warmed (the cache's load runs a warm-up pass)."""
        servable = replace(await self.servable(tenant_id, model_id), registered=f"{name}@{version}")
        await self.loaded(servable)
        return Target(version, servable)

    async def _targets(self, tenant_id: str, name: str, plan: Plan, known: tuple[Target | None, ...] = ()) -> tuple[Target, Target | None]:
        """The plan's current and pending targets: those ``known`` already as they are, the others loaded."""
        have = {t.version: t for t in known if t is not None}

        async def target(version: int, model_id: str) -> Target:
            return have.get(version) or await self._target(tenant_id, name, version, model_id)

        return await target(*plan.current), await target(*plan.pending) if plan.pending else None

    async def _route_of(self, tenant_id: str, resolution: registry.Resolution, started: float) -> Route:
        plan = Plan.of(resolution, time.time())
        current, pending = await self._targets(tenant_id, resolution.name, plan)
        return Route(current, time.time(), started, pending, plan.effective_at)

    async def _confirm(self, key: tuple[str, str, str | None], route: Route) -> None:
        """The poller has fallen behind (an event loop or database this busy): a move it has not
        seen could take effect before it does, so the request reads the route itself. A database
        that is away keeps the route as it is (no move can be seen; none fails) for one poll."""
        log.info("route of %s read by a request: its last reading began %.2f s ago", key[1:], time.time() - route.confirmed_at)
        try:
            await self._reread(key, route)
        except NotFound:
            self._routes.pop(key, None)  # the name, version or alias is gone: this request says so
            raise
        except Exception:  # noqa: BLE001 - answer from what is loaded rather than fail
            route.retry_at = time.time() + self.settings.alias_poll_seconds
            log.warning("could not read the route of %s; answering from version %d", key[1:], route.current.version, exc_info=True)

    async def _reread(self, key: tuple[str, str, str | None], route: Route) -> registry.Resolution | None:
        """Reads the route again and takes what changed: a version it will move to is loaded and
        warmed now, and answers from the move's moment. One read at a time per route: whoever asks
        while one runs waits for it (and gets None)."""
        if route.reading is not None:
            await route.reading.wait()
            return None
        route.reading = anyio.Event()
        started = time.time()
        try:
            resolution = await to_thread.run_sync(self._resolve, key)
            now = time.time()
            plan = Plan.of(resolution, now)
            if route.follows(plan, now):
                route.confirmed_at = started
                return resolution
            late = now - resolution.effective_at.timestamp() if resolution.effective_at is not None else 0.0
            if late > 0 and resolution.previous is not None and route.current.version != resolution.version:
                # A move's promise is to warm before traffic moves: this process saw it too late to warm ahead.
                log.warning("alias %s@%s: the move to version %d was seen %.2f s after it took effect; raise KILN_ALIAS_SWITCH_SECONDS",
                            key[1], key[2] or "", resolution.version, late)
            current, pending = await self._targets(key[0], resolution.name, plan, (route.current, route.pending))
            route.take(current, pending, plan.effective_at, started)
            return resolution
        finally:
            route.reading.set()
            route.reading = None

    async def preload(self, entries: str) -> None:
        """KILN_SERVING_PRELOAD (``tenant/name@alias``, comma-separated; a name alone: its production
        alias, else its newest version): routed and loaded at start, so the first request pays no load."""
        for entry in filter(None, (e.strip() for e in entries.split(","))):
            tenant_name, _, ref = entry.rpartition("/")
            name, _, selector = ref.partition("@")
            try:
                tenant_id = await to_thread.run_sync(self._tenant_id, tenant_name)
                target = await self.routed(tenant_id, name, selector or None)
                log.info("preloaded %s: %s (%s)", entry, target.servable.registered, target.servable.id)
            except KilnError as exc:
                log.warning("KILN_SERVING_PRELOAD %r not loaded: %s (expected tenant/name@alias)", entry, exc.message)

    def _tenant_id(self, name: str) -> str:
        with read_only(self.sessions()) as session:
            return tenants.get_tenant(session=session, name=name).id

    async def poll_routes(self) -> None:
        """Forever: every KILN_ALIAS_POLL_SECONDS, each route read again; a version it will move to
        is loaded and warmed now, and answers from the move's moment."""
        while True:
            await anyio.sleep(self.settings.alias_poll_seconds)
            for key, route in list(self._routes.items()):
                if time.time() - route.used_at > IDLE_ROUTE_SECONDS:
                    del self._routes[key]
                    continue
                try:
                    resolution = await self._reread(key, route)
                    # Every version of a name it serves, loaded ahead: a later move is then a switch, not a load
                    # (a load under load, from an object store, can take longer than the switch delay).
                    for _, model_id in resolution.versions if resolution is not None else ():
                        if self.cache.cached(model_id) is None:
                            await self.loaded(await self.servable(key[0], model_id))
                except NotFound:
                    self._routes.pop(key, None)  # the name, version or alias is gone: the next request says so
                except Exception:  # noqa: BLE001 - a database that is away: keep serving what is loaded, try again
                    log.warning("could not refresh the route of %s", key[1:], exc_info=True)

    def forget(self, tenant_id: str, ref: str) -> None:
        """Drops what this process remembers of ``ref`` (new serving options, a rotated checkpoint)."""
        for latest in (False, True):
            self._servables.drop((tenant_id, ref, latest))

    async def loaded(self, servable: Servable) -> LoadedModel:
        """The model from the cache; a first request loads it on a pool thread (once, however many wait)."""
        return self.cache.cached(servable.id) or await to_thread.run_sync(self.cache.get, servable)

    # -- predict -------------------------------------------------------------------------------------

    async def predict(self, tenant_id: str, ref: str, *, latest: bool, read_samples: ReadSamples, top_k: int | None) -> tuple[Servable, bytes]:
        """The weights that answered, and the JSON answer for the request's samples."""
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
        return servable, encode.predictions(probs, servable.card.class_names, top_k)

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

"""Online inference in one API process: the model cache, one micro-batcher per model, and the
cheap per-request path around them (cached key and record lookups, orjson in and out).

Scale by processes (``kiln api --workers N``), one torch thread each: every process has its own
cache and batchers. Forward passes run on one thread per process, off the event loop.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import orjson
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from app import inference
from app.artifacts import CHECKPOINT_MODEL, ArtifactStore, job_prefix
from app.batching import BatchPolicy, DeadlineExceeded, MicroBatcher, Overloaded
from app.db.tables import Job, TrainedModel
from app.errors import Conflict, GatewayTimeout, InvalidInput, NotFound, Unavailable, detail
from app.services import trained_models
from app.settings import Settings
from app.ttlcache import TTLCache

PREDICT_FIELDS = {"inputs", "lengths"}


class ServingRuntime:
    def __init__(self, settings: Settings, sessions, store: ArtifactStore):
        self.settings = settings
        self.sessions = sessions
        self.cache = inference.ModelCache(store, settings.model_cache_bytes)
        # One forward thread: with one torch thread per process, two forwards at once only contend.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kiln-forward")
        self.policy = BatchPolicy(
            max_batch_size=settings.predict_max_batch, max_delay_ms=settings.predict_max_delay_ms,
            max_queue=settings.predict_max_queue, timeout_s=settings.predict_timeout_seconds,
        )
        self._records: TTLCache[TrainedModel] = TTLCache(settings.model_record_cache_seconds)
        self._batchers: dict[str, tuple[inference.LoadedModel, MicroBatcher]] = {}

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def record(self, tenant_id: str, model_id: str) -> TrainedModel:
        key = (tenant_id, model_id)
        record = self._records.get(key)
        if record is None:
            record = await run_in_threadpool(self._read_record, tenant_id, model_id)
            self._records.put(key, record)
        return record

    def _read_record(self, tenant_id: str, model_id: str) -> TrainedModel:
        with self.sessions() as session:
            record = trained_models.get(session=session, tenant_id=tenant_id, model_id=model_id)
            session.expunge(record)
            return record

    async def latest(self, tenant_id: str, ref: str) -> TrainedModel:
        """``?checkpoint=latest``: a model as it is, or a training job's newest checkpoint, even
        while the job still runs (then the record is made up from the job's files, id ``job@step-N``)."""
        key = (tenant_id, ref, "latest")
        record = self._records.get(key)
        if record is None:
            record = await run_in_threadpool(self._read_latest, tenant_id, ref)
            self._records.put(key, record)
        return record

    def forget_latest(self, tenant_id: str, ref: str) -> None:
        self._records.drop((tenant_id, ref, "latest"))

    def _read_latest(self, tenant_id: str, ref: str) -> TrainedModel:
        with self.sessions() as session:
            job = session.scalar(select(Job).where(Job.id == ref, Job.tenant_id == tenant_id, Job.kind == "train"))
            model_id = job.model_id if job is not None else ref
            model = session.scalar(select(TrainedModel).where(TrainedModel.id == model_id, TrainedModel.tenant_id == tenant_id))
            if model is not None:
                session.expunge(model)
                return model
            if job is None:
                raise NotFound(f"no model or training job {ref!r}")
            session.expunge(job)
        return checkpoint_record(self.cache.store, job)

    async def loaded(self, record: TrainedModel) -> inference.LoadedModel:
        """The model from the cache; a first request loads it on a pool thread (once, however many wait)."""
        return self.cache.cached(record.id) or await run_in_threadpool(self.cache.get, record)

    def forget_record(self, tenant_id: str, model_id: str) -> None:
        self._records.drop((tenant_id, model_id))

    def policy_for(self, record: TrainedModel) -> BatchPolicy:
        """The model's overrides over the settings' defaults. KILN_PREDICT_MAX_BATCH=1 turns batching
        off for every model, overrides included: it is the switch for comparing with and without."""
        overrides = record.serving or {}
        if self.policy.max_batch_size == 1 or not overrides:
            return self.policy
        return replace(
            self.policy,
            max_batch_size=overrides.get("max_batch_size", self.policy.max_batch_size),
            max_delay_ms=overrides.get("max_delay_ms", self.policy.max_delay_ms),
        )

    def batcher(self, record: TrainedModel, loaded: inference.LoadedModel) -> MicroBatcher:
        entry = self._batchers.get(record.id)
        if entry is None or entry[0] is not loaded:  # new, or the model was evicted and loaded again
            if len(self._batchers) > 4 * max(1, len(self.cache)):
                self._drop_idle_batchers()
            entry = (loaded, MicroBatcher(partial(inference.forward_probs, loaded), self.executor, self.policy_for(record)))
            self._batchers[record.id] = entry
        else:
            entry[1].policy = self.policy_for(record)  # the record may carry new overrides
        return entry[1]

    def _drop_idle_batchers(self) -> None:
        for model_id, (_, batcher) in list(self._batchers.items()):
            if not batcher.waiting_samples and self.cache.cached(model_id) is None:
                del self._batchers[model_id]

    async def predict(self, record: TrainedModel, x: np.ndarray, lengths: np.ndarray | None, top_k: int | None) -> bytes:
        """The JSON answer for samples ``x``: predictions, probabilities and, if asked, the top k."""
        loaded = await self.loaded(record)
        loaded.require("classify", "predict")
        inference.check_tokens(loaded, x)
        if loaded.takes_lengths:
            lengths = inference.lengths_array(lengths, x)
        if top_k is not None and top_k > len(loaded.class_names):
            raise InvalidInput(f"top_k is {top_k} but the model has {len(loaded.class_names)} classes",
                               [detail(["query", "top_k"], f"at most {len(loaded.class_names)}")])
        try:
            probs = await self.batcher(record, loaded).submit(x, lengths if loaded.takes_lengths else None)
        except Overloaded as exc:
            raise Unavailable(f"model {record.id} is over capacity: {exc}; retry shortly", headers={"Retry-After": "1"}) from None
        except DeadlineExceeded as exc:
            raise GatewayTimeout(f"model {record.id} did not answer in time: {exc}") from None
        return answer(probs, loaded.class_names, top_k)


def answer(probs: np.ndarray, class_names: list[str], top_k: int | None) -> bytes:
    out: dict[str, Any] = {"predictions": [class_names[i] for i in probs.argmax(1).tolist()], "probabilities": probs}
    if top_k:
        order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
        out["top_k"] = [[{"class": class_names[j], "probability": float(row[j])} for j in picks] for row, picks in zip(probs, order.tolist())]
    return orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY)


def parse_predict_json(body: bytes, sample_shape: tuple[int, ...], max_samples: int) -> tuple[np.ndarray, list[Any] | None]:
    """``{"inputs": [...], "lengths": [...]?}`` as float32 samples, or a 422 naming what is wrong.
    orjson, not pydantic: a 32x32 sample is a thousand numbers, and this runs on every request."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", [detail(["body"], "invalid JSON")]) from None
    if not isinstance(data, dict):
        raise InvalidInput('the body must be a JSON object {"inputs": [...]}', [detail(["body"], "not an object")])
    unknown = sorted(set(data) - PREDICT_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(unknown)}", [detail(["body", k], "extra fields not permitted") for k in unknown])
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("inputs must be a non-empty list of samples", [detail(["body", "inputs"], "a non-empty list")])
    lengths = data.get("lengths")
    if lengths is not None and not isinstance(lengths, list):
        raise InvalidInput("lengths must be a list of integers", [detail(["body", "lengths"], "a list")])
    return inference.samples_array(inputs, sample_shape, max_samples), lengths


def checkpoint_record(store: ArtifactStore, job: Job) -> TrainedModel:
    """A transient model record for a training job's newest checkpoint."""
    prefix = job_prefix(job.id)
    if not store.exists(f"{prefix}/{CHECKPOINT_MODEL}"):
        raise Conflict(f"job {job.id} is {job.state} and has not started training a classifier: no checkpoint to predict with")
    checkpoints = [k for k in store.list(f"{prefix}/checkpoints") if k.rsplit("/", 1)[1].startswith("step-")]
    if not checkpoints:
        raise Conflict(f"job {job.id} has no checkpoint yet: the first is written at the end of its first epoch")
    described = orjson.loads(store.read_bytes(f"{prefix}/{CHECKPOINT_MODEL}"))
    step = int(checkpoints[-1].rsplit("step-", 1)[1].split(".")[0])
    return TrainedModel(
        id=f"{job.id}@step-{step}", tenant_id=job.tenant_id, job_id=job.id, name=job.name, metrics={}, parameter_count=0,
        size_bytes=0, artifact_path=checkpoints[-1], **described,
    )

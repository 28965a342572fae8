"""The SQL tables. Alembic migrations are the only way they are created; a test checks the two agree.

Every row carries its tenant, and every query the services make filters on it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.core.db.types import UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Quotas set by the operator (kiln tenants set-quota); null: no limit.
    max_running_jobs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_queued_jobs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_storage_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The highest job priority its members may ask for (null: any, up to 10).
    max_priority: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # When a worker last started one of its jobs: with one worker free, tenants take turns.
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    # sha256 of the key: keys are 256 random bits, so a fast hash is enough and a lookup is one index probe.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100), default="", server_default="")
    # What the key may do: read, train, predict, admin (tenants.SCOPES).
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_tenant_created", "tenant_id", "created_at", "id"),
        # A page of a tenant's jobs of one kind and state, newest first (GET /v1/jobs?state=).
        Index("ix_jobs_tenant_kind_state_created", "tenant_id", "kind", "state", "created_at", "id"),
        Index("ix_jobs_state_lease", "state", "lease_expires_at"),
        # A tenant's next job (highest priority, then oldest): the claim's one probe per tenant.
        Index("ix_jobs_tenant_next", "tenant_id", "state", "priority", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # "train", or "inference" (a batch-inference job: same lease, progress and outcome machinery).
    kind: Mapped[str] = mapped_column(String(16), default="train", server_default="train")
    state: Mapped[str] = mapped_column(String(16), default="queued")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The dataset the job trains on (an uploaded id or a builtin:... name), so a dataset in use cannot be deleted.
    dataset_ref: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)

    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    # Attempts that ended by a graceful hand-back (SIGTERM): not the job's fault, so not counted against max_attempts.
    handbacks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Who runs it: higher priority first (-10..10), then fair share (see app/core/jobs/scheduling.py);
    # the device a worker must serve: cpu, cuda or any.
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    device: Mapped[str] = mapped_column(String(8), default="any", server_default="any")

    epoch: Mapped[int] = mapped_column(Integer, default=0)
    epochs: Mapped[int] = mapped_column(Integer, default=0)
    step: Mapped[int] = mapped_column(BigInteger, default=0)
    total_steps: Mapped[int] = mapped_column(BigInteger, default=0)
    # The pace of the running attempt over its last minute, as its worker saw it: the ETA's basis.
    steps_per_second: Mapped[float | None] = mapped_column(Float, nullable=True)
    latest_metrics: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    # What the job's checkpoints take in the artifact store (the newest few and the best), for the tenant's storage.
    checkpoint_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # What the submit check estimated a worker needs: {"parameters", "memory_bytes"}; null for batch-inference jobs.
    estimate: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)

    error_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    model_id: Mapped[str | None] = mapped_column(String(40), nullable=True)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When a wake-up message was last sent; the reconciler re-sends for queued jobs whose message is gone.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class JobLabel(Base):
    """A job's label, one row each, so a list filtered by labels is an index probe per label."""

    __tablename__ = "job_labels"
    __table_args__ = (Index("ix_job_labels_tenant_key_value", "tenant_id", "key", "value"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(63), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    value: Mapped[str] = mapped_column(String(255))


class IdempotencyKey(Base):
    """The answer to a create made with an ``Idempotency-Key``, given again to a retry of it."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_tenant_created", "tenant_id", "created_at"),)

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    route: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the request's body, as parsed
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    location: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JobEvent(Base):
    """What happened to a job, in order: state changes, progress, metric points, log lines, the end.
    ``seq`` counts per job; it is taken under the job row's lock, so events commit in seq order and
    a reader that has seen seq n has seen everything before it (what resuming a stream relies on)."""

    __tablename__ = "job_events"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Webhook(Base):
    """Where a tenant wants to hear of its jobs' transitions. The secret signs every delivery
    (Standard Webhooks); it is shown once, when the hook is made."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """One event for one hook: the outbox row, written in the transaction of the transition it tells
    of, then sent (and retried) by a worker's sender until it succeeds or ages out."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_hook_created", "webhook_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the webhook-id header: the same on every retry
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # pending | succeeded | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ServiceStat(Base):
    """A service-wide counter (Prometheus' word), kept in the database so every host adds to one
    total: jobs finished, heartbeats failed, and each bucket of the queue-wait and duration
    histograms (a row per bucket, not cumulative; ``/metrics`` adds them up). No tenant's data."""

    __tablename__ = "service_stats"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    labels: Mapped[str] = mapped_column(String(300), primary_key=True)  # canonical JSON of the label values
    value: Mapped[float] = mapped_column(Float)


class JobAttempt(Base):
    """One attempt at a job: which worker, how it ended, how far it got and how much memory it took.
    What tells a worker lost to the job itself (an out-of-memory kill, again and again) from bad luck."""

    __tablename__ = "job_attempts"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    worker_id: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # succeeded | failed | cancelled | handed_back | lost; null while it runs
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    resumed_from_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    checkpoint_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the newest checkpoint it wrote
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class MetricPoint(Base):
    """One value of one metric at one step. Keyed so a replayed stretch overwrites, never duplicates."""

    __tablename__ = "metric_points"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    time: Mapped[datetime] = mapped_column(UTCDateTime())


class MetricRollup(Base):
    """One metric's aligned stretch of steps ``[bucket << level, (bucket + 1) << level)``, summed up:
    how many points, and its first, last, lowest and highest point. Kept as points arrive
    (``app.core.jobs.metric_rollups``) so a downsampled read costs O(answer), not O(series)."""

    __tablename__ = "metric_rollups"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    count: Mapped[int] = mapped_column(BigInteger)
    # The four points M4 keeps of the stretch, whole: a chart's read needs nothing else.
    first_step: Mapped[int] = mapped_column(BigInteger)
    first_epoch: Mapped[int] = mapped_column(Integer)
    first_value: Mapped[float] = mapped_column(Float)
    first_time_us: Mapped[int] = mapped_column(BigInteger)  # microseconds since 1970: a chart reads thousands
    last_step: Mapped[int] = mapped_column(BigInteger)
    last_epoch: Mapped[int] = mapped_column(Integer)
    last_value: Mapped[float] = mapped_column(Float)
    last_time_us: Mapped[int] = mapped_column(BigInteger)  # microseconds since 1970: a chart reads thousands
    low_step: Mapped[int] = mapped_column(BigInteger)
    low_epoch: Mapped[int] = mapped_column(Integer)
    low_value: Mapped[float] = mapped_column(Float)
    low_time_us: Mapped[int] = mapped_column(BigInteger)  # microseconds since 1970: a chart reads thousands
    high_step: Mapped[int] = mapped_column(BigInteger)
    high_epoch: Mapped[int] = mapped_column(Integer)
    high_value: Mapped[float] = mapped_column(Float)
    high_time_us: Mapped[int] = mapped_column(BigInteger)  # microseconds since 1970: a chart reads thousands


class TrainedModel(Base):
    __tablename__ = "models"
    __table_args__ = (Index("ix_models_tenant_created", "tenant_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(200))
    architecture: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    input_shape: Mapped[list[int]] = mapped_column(JSON)
    sample_shape: Mapped[list[int]] = mapped_column(JSON)
    class_names: Mapped[list[str]] = mapped_column(JSON)
    preprocessing: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, float]] = mapped_column(JSON)
    parameter_count: Mapped[int] = mapped_column(BigInteger)
    artifact_path: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # Micro-batching overrides for this model ({"max_batch_size", "max_delay_ms"}); null: the settings' defaults.
    serving: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RegisteredModel(Base):
    """A name a tenant serves under (``digits``), whose versions each point at a trained model and
    whose aliases (``production``) point at a version."""

    __tablename__ = "registered_models"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),
                      Index("ix_registered_models_tenant_created", "tenant_id", "created_at", "id"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModelVersion(Base):
    """Version N of a registered model: one trained model, for as long as the version exists (the
    model cannot be deleted under it)."""

    __tablename__ = "model_versions"

    registered_model_id: Mapped[str] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModelAlias(Base):
    """An alias and the version it points at. A move takes effect at ``effective_at``, a moment
    every API process sees coming (they poll) so each loads and warms the new version before it;
    until then the alias answers from ``previous_version``."""

    __tablename__ = "model_aliases"

    registered_model_id: Mapped[str] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    previous_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AliasMove(Base):
    """Each move of an alias: which version, from when, by which key (a rollback is a move back)."""

    __tablename__ = "alias_moves"
    __table_args__ = (Index("ix_alias_moves_alias", "registered_model_id", "alias", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    registered_model_id: Mapped[str] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    previous_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime())
    moved_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class Dataset(Base):
    """An uploaded dataset, converted once into arrays in the artifact store."""

    __tablename__ = "datasets"
    __table_args__ = (Index("ix_datasets_tenant_created", "tenant_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))  # image | tabular | sequence
    task: Mapped[str] = mapped_column(String(20))  # classification | unlabelled
    num_samples: Mapped[int] = mapped_column(Integer)
    num_test_samples: Mapped[int] = mapped_column(Integer)
    sample_shape: Mapped[list[int]] = mapped_column(JSON)
    dtype: Mapped[str] = mapped_column(String(20))
    num_classes: Mapped[int] = mapped_column(Integer)
    class_names: Mapped[list[str]] = mapped_column(JSON)
    class_counts: Mapped[list[int]] = mapped_column(JSON)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON)
    value_max: Mapped[float] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)  # format-specific: feature names, vocabulary size...
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    artifact_path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Worker(Base):
    """A worker process, alive while it keeps its row fresh: the device it serves and the job it runs."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    device: Mapped[str] = mapped_column(String(8))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)

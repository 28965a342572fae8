"""One settings object, read from ``KILN_*`` environment variables.

The embedded default needs no server: SQLite for job state, a SQL-backed Celery broker and an
artifact folder, all under ``KILN_DATA_DIR``. Production only changes URLs.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from limits import parse_many
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KILN_", extra="ignore")

    data_dir: Path = Path("./var")
    database_url: str = ""  # default: sqlite:///<data_dir>/kiln.db
    broker_url: str = ""  # default: sqla+sqlite:///<data_dir>/broker.db
    artifacts_dir: Path | None = None  # default: <data_dir>/artifacts
    # The object store instead of the folder: s3://bucket/prefix on any S3-compatible server.
    artifacts_url: str = Field("", pattern=r"^(s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[A-Za-z0-9._\-/]*)?)?$")
    s3_endpoint_url: str = Field("", description="default: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, else AWS itself")
    s3_region: str = Field("", description="default: AWS_REGION or AWS_DEFAULT_REGION, else us-east-1")
    s3_access_key_id: str = Field("", description="default: boto3's chain (AWS_ACCESS_KEY_ID, ~/.aws, an instance role)")
    s3_secret_access_key: str = Field("", repr=False)
    store_retry_seconds: float = Field(60.0, ge=0, description="how long a call to the object store is tried again while it is unreachable")
    worker_cache_dir: Path | None = None  # default: <data_dir>/cache; datasets fetched from the object store
    worker_cache_bytes: int = Field(20 * 1024**3, ge=0, description="the dataset cache's size; least recently used go first")
    queue_name: str = "kiln.train"

    host: str = "127.0.0.1"
    port: int = 8000
    metrics_enabled: bool = Field(True, description="GET /metrics, and the counting of predict requests behind it")
    metrics_token: str = Field("", repr=False, description="when set, GET /metrics needs it as a bearer token")

    # Training worker
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$", description="where workers train; auto = GPU if present")
    worker_threads: int = Field(0, ge=0, description="torch threads per training worker; 0 = all cores")
    lease_seconds: float = Field(30.0, gt=0)
    heartbeat_seconds: float = Field(1.0, gt=0, description="lease renewal, metric flush and cancel check")
    train_loss_every_steps: int = Field(10, ge=1)
    max_runtime_seconds: int = Field(24 * 3600, ge=1, description="a ceiling on training.max_runtime_seconds, and its default")
    min_checkpoint_seconds: float = Field(10.0, ge=0, description="at most one step checkpoint (checkpoint_every_steps) per this many seconds")
    max_model_parameters: int = Field(500_000_000, ge=1, description="a network's parameters, checked at submit")
    worker_memory_bytes: int = Field(16 * 1024**3, ge=1, description="what a worker can hold: jobs estimated to need more are refused at submit")
    max_attempts: int = Field(3, ge=1, description="attempts before a job whose worker keeps dying is failed")
    run_reconciler: bool = True
    worker_beat_seconds: float = Field(5.0, gt=0, description="how often a worker says it is alive (the workers table)")
    worker_alive_seconds: float = Field(30.0, gt=0, description="a worker unseen this long is not counted as alive")
    orphan_sweep_seconds: float = Field(3600.0, gt=0, description="how often the reconciler looks for artifacts no row owns")
    orphan_grace_seconds: float = Field(3600.0, ge=0, description="an unowned artifact folder is collected once unchanged this long")
    reconcile_seconds: float = Field(10.0, gt=0, description="how often the reconciler runs (in every api and worker)")
    requeue_grace_seconds: float = Field(15.0, ge=0, description="a queued job's message may be in flight this long")
    checkpoint_keep: int = Field(2, ge=1, description="newest checkpoints kept per job, besides the best")
    checkpoint_monitor: str = "val_loss"
    checkpoint_monitor_mode: str = Field("min", pattern="^(min|max)$")

    # Datasets
    max_upload_bytes: int = Field(2 * 1024**3, ge=1024, description="body size limit of a dataset upload")
    max_uncompressed_bytes: int = Field(8 * 1024**3, ge=1024, description="a dataset's size once decompressed and converted")
    max_zip_entries: int = Field(200_000, ge=1)
    max_compression_ratio: float = Field(200.0, gt=1, description="of a ZIP entry, or of a gzip'd IDX file as it streams")
    max_classes: int = Field(10_000, ge=2, description="classes in a dataset, checked before any is named")
    max_sample_elements: int = Field(4_194_304, ge=1, description="values in one sample of an upload (a 2048x2048 image)")
    max_csv_columns: int = Field(10_000, ge=1, description="feature columns of a CSV upload, checked from its header")

    # Serving
    api_torch_threads: int = Field(1, ge=1, description="torch threads in each API process")
    max_request_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    max_predict_samples: int = Field(10_000, ge=1)
    max_predict_files: int = Field(256, ge=1, description="images in one multipart predict request")
    max_predict_elements: int = Field(16_777_216, ge=1, description="values the samples of one predict request decode to")
    max_metric_points: int = Field(10_000, ge=2, description="points of one series in one answer (max_points and the page size of raw points)")
    max_query_list: int = Field(64, ge=1, description="values of a query parameter that takes a list (names=, label=)")
    max_labels: int = Field(32, ge=0, description="labels on one job")
    max_streams_per_tenant: int = Field(16, ge=1, description="open event and log streams of one tenant, per API process")
    events_poll_seconds: float = Field(0.5, gt=0, description="how often an open stream looks for new events of its job")
    stream_max_seconds: float = Field(3600, gt=0, description="how long one event or log stream stays open (an SSE client resumes by itself)")
    idempotency_seconds: float = Field(86_400, ge=1, description="how long an Idempotency-Key's first answer is given again")
    max_response_elements: int = Field(4_194_304, ge=1, description="numbers in one answer (predict, generate, transform, preview)")
    model_cache_bytes: int = Field(512 * 1024 * 1024, ge=0)
    predict_max_batch: int = Field(32, ge=1, description="samples per forward pass when micro-batching; 1 turns batching off")
    predict_max_delay_ms: float = Field(2.0, ge=0, description="how long an idle model waits for a batch to fill")
    predict_max_queue: int = Field(16_384, ge=1, description="samples waiting per model before requests get 503")
    predict_timeout_seconds: float = Field(30.0, gt=0, description="a predict request waiting longer gets 504")
    auth_cache_seconds: float = Field(10.0, ge=0, description="how long a process trusts a checked API key, and remembers a refused one")

    # Rate limits per API key, in the `limits` notation ("20/second;600/minute"); empty: no limit.
    rate_limit_predict: str = Field("5000/second", description="predict, generate and transform requests")
    rate_limit_submit: str = Field("50/second", description="job submits (training and batch inference)")
    rate_limit_upload: str = Field("10/second", description="dataset uploads")
    rate_limit_storage_url: str = Field("", description="where the counters live; default: the broker's Redis, else in the process")
    model_record_cache_seconds: float = Field(5.0, ge=0, description="how long a process trusts a model's record")
    # The model registry: an alias move takes effect this long after it is made, time for every API
    # process (each polls aliases every KILN_ALIAS_POLL_SECONDS) to load and warm the new version first.
    alias_switch_seconds: float = Field(2.0, ge=0, description="how long after a move an alias answers from its new version")
    alias_poll_seconds: float = Field(0.5, gt=0, description="how often an API process reads the aliases it serves")
    serving_preload: str = Field("", description="aliases loaded at API start, comma-separated name@alias (name alone: production)")
    max_registered_models: int = Field(1000, ge=0, description="registered model names one tenant may have")
    # Every version of a name an API process serves is loaded ahead (a move is then a switch): bounded.
    max_model_versions: int = Field(100, ge=1, description="versions one registered model name may have")

    # Webhooks
    max_webhooks: int = Field(20, ge=0, description="webhooks one tenant may have")
    webhook_allow_private: bool = Field(False, description="let webhooks reach loopback and private addresses (tests, a private network)")
    webhook_retry_seconds: str = Field("5,30,120,600,1800,3600,7200,14400,28800", pattern=r"^\s*\d+(\.\d+)?(\s*,\s*\d+(\.\d+)?)*\s*$",
                                       description="the waits between tries of a delivery; the last repeats until it is too old")
    webhook_max_age_seconds: float = Field(86400.0, gt=0, description="a delivery still failing this long after its event is given up")
    webhook_timeout_seconds: float = Field(10.0, gt=0, description="one try: connect, send and read the answer")
    webhook_poll_seconds: float = Field(1.0, gt=0, description="how often a worker's sender looks for deliveries due")

    @field_validator("rate_limit_predict", "rate_limit_submit", "rate_limit_upload")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        if value.strip():
            try:
                parse_many(value)
            except ValueError:
                raise ValueError(f"not a rate limit: {value!r} (write it like '20/second' or '20/second;600/minute')") from None
        return value.strip()

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> "Settings":
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'kiln.db'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{self.data_dir / 'broker.db'}"
        if self.artifacts_dir is None:
            self.artifacts_dir = self.data_dir / "artifacts"
        self.artifacts_dir = self.artifacts_dir.expanduser().resolve()
        self.worker_cache_dir = (self.worker_cache_dir or self.data_dir / "cache").expanduser().resolve()
        return self

    @property
    def api_key_file(self) -> Path:
        return self.data_dir / "api-key"

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.webhook_retry_seconds.split(","))

    @property
    def torch_threads(self) -> int:
        return self.worker_threads or os.cpu_count() or 1


@lru_cache
def get_settings() -> Settings:
    return Settings()

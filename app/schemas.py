"""What the API answers, as pydantic models (tables and API shapes are kept apart)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.db.tables import Dataset, Job, TrainedModel

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Progress(BaseModel):
    epoch: int
    epochs: int
    step: int
    total_steps: int
    fraction: float


class ErrorInfo(BaseModel):
    type: str
    message: str


class JobOut(BaseModel):
    id: str
    name: str
    state: JobState
    attempt: int
    progress: Progress
    metrics: dict[str, float]
    error: ErrorInfo | None
    model_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    spec: dict[str, Any]

    @classmethod
    def of(cls, job: Job) -> "JobOut":
        fraction = 1.0 if job.state == "succeeded" else (job.step / job.total_steps if job.total_steps else 0.0)
        return cls(
            id=job.id, name=job.name, state=job.state, attempt=job.attempt,
            progress=Progress(epoch=job.epoch, epochs=job.epochs, step=job.step, total_steps=job.total_steps, fraction=round(fraction, 4)),
            metrics=job.latest_metrics or {},
            error=ErrorInfo(type=job.error_type, message=job.error_message or "") if job.error_type else None,
            model_id=job.model_id, created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
            spec=job.spec,
        )


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class MetricPointOut(BaseModel):
    step: int
    epoch: int
    value: float
    time: datetime


class MetricsOut(BaseModel):
    job_id: str
    series: dict[str, list[MetricPointOut]]


class ModelOut(BaseModel):
    id: str
    name: str
    architecture: str
    params: dict[str, Any]
    input_shape: list[int] = Field(description="what the network takes, after preprocessing")
    sample_shape: list[int] = Field(description="one raw sample as predict takes it")
    class_names: list[str]
    preprocessing: dict[str, Any]
    metrics: dict[str, float]
    parameter_count: int
    size_bytes: int
    serving: "ServingOptions" = Field(description="micro-batching overrides; null fields take the service's defaults")
    job_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, m: TrainedModel) -> "ModelOut":
        return cls(
            id=m.id, name=m.name, architecture=m.architecture, params=m.params, input_shape=m.input_shape,
            sample_shape=m.sample_shape, class_names=m.class_names, preprocessing=m.preprocessing, metrics=m.metrics,
            parameter_count=m.parameter_count, size_bytes=m.size_bytes, serving=ServingOptions(**(m.serving or {})),
            job_id=m.job_id, created_at=m.created_at,
        )


class ServingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_batch_size: int | None = Field(None, ge=1, le=4096, description="samples per forward pass (KILN_PREDICT_MAX_BATCH)")
    max_delay_ms: float | None = Field(None, ge=0, le=1000, description="how long an idle model waits for company (KILN_PREDICT_MAX_DELAY_MS)")


class ModelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    serving: ServingOptions


ModelOut.model_rebuild()


class ModelList(BaseModel):
    items: list[ModelOut]
    next_cursor: str | None


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Items are checked by the runtime (shape, numbers), which is far cheaper than pydantic on nested lists.
    inputs: list[Any] = Field(min_length=1, description="samples exactly as in the dataset, e.g. 8x8 values 0-16 for builtin:digits")
    lengths: list[Any] | None = Field(None, description="sequence models: each sample's real length (default: all of it)")


class PredictOut(BaseModel):
    predictions: list[str]
    probabilities: list[list[float]]


class ArchitectureOut(BaseModel):
    name: str
    description: str
    task: str
    input: dict[str, Any]
    params_schema: dict[str, Any]
    defaults: dict[str, Any]
    example_input_shape: list[int]
    submodules: list[str] = Field(description="top-level submodules, the names init_from.freeze takes")
    parameter_count: int
    parameter_count_note: str


class DatasetOut(BaseModel):
    id: str
    name: str
    format: str
    kind: str = Field(description="image | tabular | sequence")
    task: str = Field(description="classification | unlabelled")
    num_samples: int
    num_test_samples: int
    sample_shape: list[int]
    dtype: str
    num_classes: int
    class_names: list[str]
    class_counts: list[int]
    stats: dict[str, list[float]] = Field(description="per-channel (images) or per-feature mean and std, in raw units")
    details: dict[str, Any]
    size_bytes: int
    sha256: str = Field(description="of the uploaded file; for several files, of their sha256 digests in name order")
    created_at: datetime

    @classmethod
    def of(cls, d: Dataset) -> "DatasetOut":
        return cls(
            id=d.id, name=d.name, format=d.format, kind=d.kind, task=d.task, num_samples=d.num_samples,
            num_test_samples=d.num_test_samples, sample_shape=d.sample_shape, dtype=d.dtype, num_classes=d.num_classes,
            class_names=d.class_names, class_counts=d.class_counts, stats=d.stats, details=d.details,
            size_bytes=d.size_bytes, sha256=d.sha256, created_at=d.created_at,
        )


class DatasetList(BaseModel):
    items: list[DatasetOut]
    next_cursor: str | None


class GenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(16, ge=1, le=256)
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="the same seed gives the same samples")


class GenerateOut(BaseModel):
    samples: list[Any] = Field(description="n samples in the dataset's raw units and sample shape")


class TransformIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: list[Any] = Field(min_length=1)


class TransformOut(BaseModel):
    features: list[list[float]] = Field(description="hidden unit probabilities per sample")
    reconstructions: list[Any] = Field(description="one up-down pass, in raw units")


class InferenceJobIn(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    model_id: str = Field(max_length=40, description="one of your models (a classifier)")
    dataset_id: str = Field(max_length=200, description="one of your dataset ids, or a builtin:... name")
    split: Literal["test", "train", "all"] | None = Field(None, description="which samples; default: test if the dataset has one, else train")
    batch_size: int = Field(256, ge=1, le=8192)


class InferenceProgress(BaseModel):
    step: int = Field(description="batches done")
    total_steps: int
    fraction: float


class InferenceJobOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    id: str
    state: JobState
    attempt: int
    model_id: str
    dataset_id: str
    split: str
    progress: InferenceProgress
    metrics: dict[str, float] = Field(description="samples, and accuracy where the split has labels")
    error: ErrorInfo | None
    results: dict[str, str] | None = Field(description="download paths by format, once succeeded")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> "InferenceJobOut":
        fraction = 1.0 if job.state == "succeeded" else (job.step / job.total_steps if job.total_steps else 0.0)
        results = None
        if job.state == "succeeded":
            results = {fmt: f"/v1/inference-jobs/{job.id}/results?format={fmt}" for fmt in ("csv", "npz")}
        return cls(
            id=job.id, state=job.state, attempt=job.attempt, model_id=job.spec["model_id"], dataset_id=job.spec["dataset_id"],
            split=job.spec["split"], progress=InferenceProgress(step=job.step, total_steps=job.total_steps, fraction=round(fraction, 4)),
            metrics=job.latest_metrics or {},
            error=ErrorInfo(type=job.error_type, message=job.error_message or "") if job.error_type else None,
            results=results, created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
        )


class InferenceJobList(BaseModel):
    items: list[InferenceJobOut]
    next_cursor: str | None

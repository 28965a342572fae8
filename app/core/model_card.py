"""The trained model's description, its card: what network it is, what it takes and what its
outputs mean. Written by the worker (beside the weights, and beside a job's checkpoints), read by
serving and export, kept in the model's row. Built here and nowhere else."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import orjson

from app.core.artifacts import layout
from app.core.artifacts.store import ArtifactStore


@dataclass(frozen=True)
class ModelCard:
    architecture: str
    params: dict[str, Any]
    input_shape: list[int]  # what the network takes, after preprocessing
    sample_shape: list[int]  # one raw sample, as predict takes it
    class_names: list[str]  # empty for generative models
    preprocessing: dict[str, Any]  # app.core.preprocessing.Preprocessing as a dict (+ a GAN's output_range)
    # Known once training has ended:
    name: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    parameter_count: int = 0

    def finished(self, *, name: str, metrics: dict[str, float], parameter_count: int) -> "ModelCard":
        return replace(self, name=name, metrics=dict(metrics), parameter_count=parameter_count)

    def with_preprocessing(self, **extra: Any) -> "ModelCard":
        return replace(self, preprocessing={**self.preprocessing, **extra})

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes) -> "ModelCard":
        return cls(**orjson.loads(data))


@dataclass(frozen=True)
class SavedModel:
    """A finished model's files in the artifact store, and its card: what becomes its row."""

    model_id: str
    card: ModelCard
    artifact_path: str  # the model's folder (layout.model_prefix)
    size_bytes: int


def write_model(store: ArtifactStore, model_id: str, weights: bytes, card: ModelCard) -> SavedModel:
    """A model's files: its weights (safetensors bytes, never pickle) and its card, each written
    atomically; the training worker and a model made from a checkpoint both save through here."""
    prefix = layout.model_prefix(model_id)
    store.write_bytes(layout.model_file(prefix, "safetensors"), weights)
    store.write_bytes(layout.model_file(prefix, "card"), card.to_json())
    return SavedModel(model_id=model_id, card=card, artifact_path=prefix, size_bytes=store.size(prefix))

"""What serving can load, and loading it: a servable (a finished model, or a training job's newest
checkpoint) is its card and the key of its weights; loading builds the network from the registry,
reads the weights (safetensors, or a checkpoint with ``weights_only``) and puts it in eval mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from safetensors.torch import load_file

import models
from app.core import trained_models
from app.core.artifacts import layout
from app.core.artifacts.store import ArtifactStore
from app.core.db.tables import Job, TrainedModel
from app.core.errors import Conflict, InvalidInput, detail
from app.core.model_card import ModelCard
from app.core.preprocessing import Preprocessing

ENDPOINT_OF_TASK = {"classify": "predict", "generate": "generate", "reconstruct": "transform"}


@dataclass(frozen=True)
class Servable:
    id: str  # mdl_..., or job_...@step-N for a checkpoint: what the Kiln-Model header names
    card: ModelCard
    weights: str  # artifact key: a safetensors file, or a checkpoint (.pt)
    pre: Preprocessing
    task: str  # the architecture's: classify, generate or reconstruct
    takes_lengths: bool  # sequence networks take (x, lengths)
    serving: dict[str, Any] | None = None  # the model's micro-batching overrides
    prefix: str | None = None  # a finished model's folder (its exports go there); None for a checkpoint
    registered: str | None = None  # name@version when it answers for a registered name (the Kiln-Model-Version header)

    @classmethod
    def of(cls, servable_id: str, card: ModelCard, weights: str, *, serving: dict[str, Any] | None = None,
           prefix: str | None = None) -> "Servable":
        arch = models.get(card.architecture)
        takes = arch.input_spec(arch.make_params(card.params))
        return cls(servable_id, card, weights, Preprocessing.from_dict(card.preprocessing), arch.task,
                   takes.kind == "sequence", serving, prefix)

    def require(self, task: str, endpoint: str) -> None:
        """A 422 naming the right endpoint when a model is asked what it does not do."""
        if self.task != task:
            raise InvalidInput(
                f"{endpoint} needs a model that does {task}; this {self.card.architecture} model does {self.task}: "
                f"use /{ENDPOINT_OF_TASK[self.task]}",
                [detail(["path", "model_id"], f"a {self.card.architecture} model")],
            )


def servable_model(record: TrainedModel) -> Servable:
    return Servable.of(record.id, trained_models.card_of(record), layout.model_file(record.artifact_path, "safetensors"),
                       serving=record.serving, prefix=record.artifact_path)


def checkpoint_card(store: ArtifactStore, job: Job) -> ModelCard:
    """The card a training job's checkpoints are read with (written when its training starts)."""
    card_key = layout.checkpoint_card(job.id)
    if not store.exists(card_key):
        raise Conflict(f"job {job.id} is {job.state} and has not started training: it has no checkpoint")
    return ModelCard.from_json(store.read_bytes(card_key))


def newest_checkpoint(store: ArtifactStore, job: Job) -> tuple[int, str]:
    """(step, key) of the job's newest step checkpoint."""
    steps = sorted((step, key) for key in store.list(layout.checkpoints_prefix(job.id)) if (step := layout.step_of(key)) is not None)
    if not steps:
        raise Conflict(f"job {job.id} has no checkpoint yet: the first is written at the end of its first epoch")
    return steps[-1]


def servable_checkpoint(store: ArtifactStore, job: Job) -> Servable:
    """A training job's newest checkpoint, even while the job runs."""
    card = checkpoint_card(store, job)
    step, key = newest_checkpoint(store, job)
    return Servable.of(f"{job.id}@step-{step}", card, key)


@dataclass
class LoadedModel:
    servable: Servable
    net: torch.nn.Module
    nbytes: int

    @property
    def pre(self) -> Preprocessing:
        return self.servable.pre

    @property
    def class_names(self) -> list[str]:
        return self.servable.card.class_names


def load(store: ArtifactStore, servable: Servable) -> LoadedModel:
    card = servable.card
    arch = models.get(card.architecture)
    net = arch.build(arch.make_params(card.params), tuple(card.input_shape), len(card.class_names), vocab_size=servable.pre.vocab_size)
    if servable.weights.endswith(".pt"):
        state = checkpoint_weights(store, servable.weights)
    else:
        with store.local_copy(servable.weights) as path:
            state = load_file(path)
    net.load_state_dict(state, strict=True)
    net.eval()
    return LoadedModel(servable, net, sum(t.numel() * t.element_size() for t in net.state_dict().values()))


def checkpoint_weights(store: ArtifactStore, key: str) -> dict[str, torch.Tensor]:
    """The network's tensors of a checkpoint (the optimizer and RNG states beside them left out)."""
    with store.local_copy(key) as path:
        # weights_only: a checkpoint is a file on disk; never run pickled code from it.
        return torch.load(path, map_location="cpu", weights_only=True)["model"]

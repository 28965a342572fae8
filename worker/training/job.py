"""A training job from its spec: the data prepared as the network needs it, the network built
(or started from another model's weights), the family's loop run through the job's context, and
what it ended in: a saved model with its card, a hand-back, a failure, or nothing (lease lost)."""

from __future__ import annotations

from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

import models
from app.core.artifacts import layout
from app.core.artifacts.store import ArtifactStore
from app.core.datasets.arrays import load_raw
from app.core.ids import new_id
from app.core.jobs.outcome import Outcome
from app.core.jobs.spec import JobSpec
from app.core.model_card import ModelCard, SavedModel, write_model
from app.core.settings import Settings
from worker.context import TrainingContext
from worker.training.classifier import ClassifierTrainer
from worker.training.config import TrainConfig, TrainResult
from worker.training.data import PreparedData, prepare
from worker.training.gan import GANTrainer
from worker.training.loop import EpochLoop
from worker.training.optim import build_optimizer
from worker.training.rbm import RBMTrainer
from worker.training.transfer import init_from

# What a stop request means for a training job: recorded as cancelled, failed, handed back; a lost
# lease (absent here) records nothing, as the job is someone else's now.
STOPPED = {"cancelled": Outcome("cancelled"), "shutdown": Outcome("queued")}


def run_training(job_id: str, spec_data: dict[str, Any], ctx: TrainingContext, store: ArtifactStore, settings: Settings) -> Outcome | None:
    spec = JobSpec.model_validate(spec_data)
    arch = models.get(spec.model.architecture)
    params = arch.make_params(spec.model.params)
    takes = arch.input_spec(params)
    prepared = prepare(
        load_raw(spec.data.dataset, store), input_kind=takes.kind, input_size=takes.size,
        input_channels=takes.channels, validation_fraction=spec.data.validation_fraction, seed=spec.seed,
        use_test_split=spec.data.use_test_split,
        standardize=arch.task == "classify",  # generative models learn data scaled to [0, 1]
    )
    torch.manual_seed(spec.seed)
    pre = prepared.preprocessing
    net = arch.build(params, pre.input_shape, max(len(prepared.class_names), 1), vocab_size=pre.vocab_size)
    card = ModelCard(
        architecture=arch.name, params=spec.model.params, input_shape=list(pre.input_shape), sample_shape=list(pre.sample_shape),
        class_names=prepared.class_names if arch.task == "classify" else [], preprocessing=pre.to_dict(),
    )
    init = spec.model.init_from
    if init is not None:
        init_from(net, store, init.model_id, reset_head=init.reset_head, freeze=init.freeze)
    config = TrainConfig.of(spec, settings)
    trainer = make_trainer(arch.task, net, spec, prepared, config, ctx)
    if isinstance(trainer, GANTrainer):  # how generated images map back to raw units
        card = card.with_preprocessing(output_range=trainer.output_range())
    # What rebuilds the network from a checkpoint: predict?checkpoint=latest, and a model made from one.
    store.write_bytes(layout.checkpoint_card(job_id), card.to_json())
    return outcome_of(trainer.fit(), trainer, card, spec, store)


def make_trainer(task: str, net: nn.Module, spec: JobSpec, prepared: PreparedData, config: TrainConfig, ctx: TrainingContext) -> EpochLoop:
    """The family for the architecture's task: classifiers, GANs (adversarial), RBMs (CD-k)."""
    optimizer = spec.training.optimizer_for(task).model_dump()  # filled at submit; a spec made here may leave it out
    if task == "generate":
        return GANTrainer(net, prepared.tensors, config, ctx, optimizer=optimizer)
    if task == "reconstruct":
        return RBMTrainer(net, prepared.tensors, config, ctx, optimizer=optimizer)
    return ClassifierTrainer(net, build_optimizer(net, optimizer), prepared.tensors, config, ctx)


def outcome_of(result: TrainResult, trainer: EpochLoop, card: ModelCard, spec: JobSpec, store: ArtifactStore) -> Outcome | None:
    if result.stop_reason is None:
        net = trainer.model
        card = card.finished(name=spec.name, metrics=result.final_metrics, parameter_count=sum(p.numel() for p in net.parameters()))
        return Outcome("succeeded", model=save_model(store, new_id("mdl"), net, card))
    if result.stop_reason == "timeout":
        return Outcome.failed("timeout", f"ran past max_runtime_seconds ({trainer.config.max_runtime_seconds} s)")
    return STOPPED.get(result.stop_reason)


def save_model(store: ArtifactStore, model_id: str, net: nn.Module, card: ModelCard) -> SavedModel:
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in net.state_dict().items()}
    return write_model(store, model_id, safetensors_bytes(state), card)

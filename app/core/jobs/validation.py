"""The checks a job spec passes before it is accepted, those that need the registry, the dataset
and (transfer learning) the source model, so a bad spec is a 422 at submit time, not a failed job."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import models
from app.core import architectures, preprocessing
from app.core.datasets.catalog import DatasetInfo
from app.core.db.tables import TrainedModel
from app.core.errors import InvalidInput, detail
from app.core.jobs.spec import JobSpec


@dataclass(frozen=True)
class JobLimits:
    """The operator's bounds on one job, checked at submit."""

    max_runtime_seconds: int = 24 * 3600  # KILN_MAX_RUNTIME_SECONDS: a ceiling, not a default
    max_model_parameters: int = 500_000_000  # KILN_MAX_MODEL_PARAMETERS
    worker_memory_bytes: int = 16 * 1024**3  # KILN_WORKER_MEMORY_BYTES
    max_labels: int = 32  # KILN_MAX_LABELS

    @classmethod
    def of(cls, settings) -> "JobLimits":
        return cls(settings.max_runtime_seconds, settings.max_model_parameters, settings.worker_memory_bytes, settings.max_labels)


@dataclass(frozen=True)
class Checked:
    params: dict[str, Any]  # with defaults filled: what will run
    estimate: dict[str, int]  # {"parameters", "memory_bytes"}: what a worker needs to hold it


# Optimizer state kept per parameter, in values (Adam: two moments; momentum: one velocity).
OPTIMIZER_STATE = {"adam": 2, "adamw": 2}
BYTES_PER_VALUE = 4


def estimate_memory(spec: JobSpec, info: DatasetInfo, input_shape: tuple[int, ...], tokens: bool, footprint: models.Footprint,
                    task: str) -> int:
    """What a worker holds to train this job, in bytes: weights, gradients and optimizer state; the
    whole preprocessed dataset (moved once to the device); one batch's activations and their
    gradients. An estimate that errs high is fine: it only refuses what no worker could hold."""
    optimizer = spec.training.optimizer_for(task)
    state = OPTIMIZER_STATE.get(optimizer.name, 1 if getattr(optimizer, "momentum", 0) else 0)
    weights = footprint.parameters * BYTES_PER_VALUE * (2 + state)
    samples = info.num_samples + (info.num_test_samples if spec.data.use_test_split else 0)
    data = samples * math.prod(input_shape) * (8 if tokens else BYTES_PER_VALUE)
    networks = 2 if task == "generate" else 1  # a GAN's generator is about its discriminator's size
    activations = spec.training.batch_size * footprint.activations_per_sample * BYTES_PER_VALUE * 2 * networks
    return weights + data + activations


def validate_spec(spec: JobSpec, info: DatasetInfo, source: TrainedModel | None = None, limits: JobLimits | None = None) -> Checked:
    """Checks that need the registry, the dataset and (transfer learning) the source model, and the
    operator's limits on a job. Returns the params with defaults filled, and the job's estimate."""
    limits = limits or JobLimits()
    runtime = spec.training.max_runtime_seconds
    if runtime is not None and runtime > limits.max_runtime_seconds:
        message = (f"training.max_runtime_seconds is {runtime}, over this service's ceiling of {limits.max_runtime_seconds} "
                   f"(KILN_MAX_RUNTIME_SECONDS)")
        raise InvalidInput(message, [detail(["body", "training", "max_runtime_seconds"], message)])
    if len(spec.labels) > limits.max_labels:
        message = f"{len(spec.labels)} labels, over this service's limit of {limits.max_labels} a job (KILN_MAX_LABELS)"
        raise InvalidInput(message, [detail(["body", "labels"], message)])
    if source is not None and source.architecture != spec.model.architecture:
        message = f"incompatible init_from: model {source.id} is {_a(source.architecture)}, not {_a(spec.model.architecture)}"
        raise InvalidInput(message, [detail(["body", "model", "init_from", "model_id"], message)])
    raw_params = spec.model.params if (source is None or spec.model.params) else source.params
    params = architectures.validate_params(spec.model.architecture, raw_params, ["body", "model", "params"])
    _check_dataset_fits(spec, info)
    arch = models.get(spec.model.architecture)
    try:
        takes = arch.input_spec(params)
        if info.kind == "sequence" and takes.kind == "image":
            raise preprocessing.IncompatibleInput(f"{arch.name} takes images, dataset {info.ref!r} holds sequences")
        pre = preprocessing.plan(
            sample_shape=info.sample_shape, value_max=info.value_max, input_kind=takes.kind,
            input_size=takes.size, input_channels=takes.channels, tokens=info.tokens, vocab_size=info.vocab_size,
        )
        footprint = arch.measure(params, pre.input_shape, max(info.num_classes, 1), vocab_size=pre.vocab_size)
    except (preprocessing.IncompatibleInput, models.ArchitectureError) as exc:
        raise InvalidInput(str(exc), [detail(["body", "model"], str(exc))]) from None
    if footprint.parameters > limits.max_model_parameters:
        message = (f"the network has {footprint.parameters:,} parameters, over the limit of {limits.max_model_parameters:,} "
                   f"(KILN_MAX_MODEL_PARAMETERS)")
        raise InvalidInput(message, [detail(["body", "model", "params"], message)])
    memory = estimate_memory(spec, info, pre.input_shape, pre.tokens, footprint, arch.task)
    if memory > limits.worker_memory_bytes:
        message = (f"training this job needs about {memory / 1e9:.1f} GB on a worker (weights, gradients, optimizer state, "
                   f"{info.num_samples:,} preprocessed samples of shape {list(pre.input_shape)}, one batch's activations), "
                   f"over the {limits.worker_memory_bytes / 1e9:.1f} GB a worker has (KILN_WORKER_MEMORY_BYTES)")
        raise InvalidInput(message, [detail(["body"], message)])
    filled = dataclasses.asdict(params)
    if arch.task != "classify":
        _check_generative_options(spec, arch.name)
    _check_validation_used(spec)
    augmentation = spec.training.augmentation
    if augmentation and (augmentation.random_crop_padding or augmentation.horizontal_flip) and (info.kind, takes.kind) != ("image", "image"):
        what = f"holds {info.kind} samples" if info.kind != "image" else f"is read as sequences by {arch.name}"
        raise InvalidInput(
            f"image augmentation asked for, but dataset {info.ref!r} {what}",
            [detail(["body", "training", "augmentation"], "only for image datasets read as images")],
        )
    if source is not None:
        submodules = arch.top_level_modules(params, pre.input_shape, info.num_classes, vocab_size=pre.vocab_size)
        _check_transfer(spec, source, filled, pre.input_shape, info.num_classes, submodules)
    return Checked(filled, {"parameters": footprint.parameters, "memory_bytes": memory})


def _check_generative_options(spec: JobSpec, name: str) -> None:
    """GAN and RBM loops train with every optimizer and schedule, but have their own losses and no
    validation metrics: the options that would mean nothing to them are refused, naming each field."""
    t = spec.training
    meaningless = [
        (["training", "l1"], t.l1 > 0),
        (["training", "lr_schedule", "name"], t.lr_schedule.name == "plateau"),
        (["training", "early_stopping"], t.early_stopping is not None),
        (["training", "augmentation"], t.augmentation is not None),
        (["training", "loss"], t.loss != "cross_entropy"),
        (["model", "init_from"], spec.model.init_from is not None),
    ]
    if name == "rbm":
        meaningless.append((["training", "label_smoothing"], t.label_smoothing > 0))  # it has no labels
    offending = [["body", *loc] for loc, bad in meaningless if bad]
    if offending:
        fields = ", ".join(".".join(map(str, loc[1:])) for loc in offending)
        loop = "contrastive divergence" if name == "rbm" else "an adversarial loss"
        raise InvalidInput(
            f"{name} trains with {loop} and reports no validation metrics; not supported: {fields}",
            [detail(loc, f"not supported for {name}") for loc in offending],
        )


def _check_transfer(spec: JobSpec, source: TrainedModel, params: dict[str, Any], input_shape, num_classes: int, submodules: list[str]) -> None:
    init = spec.model.init_from
    loc = ["body", "model", "init_from"]
    problems = []
    if source.params != params:
        differ = ", ".join(f"{k}: {source.params.get(k)!r} there, {params.get(k)!r} here" for k in sorted(set(source.params) | set(params))
                           if source.params.get(k) != params.get(k))
        problems.append((["body", "model", "params"], f"params differ from model {source.id}'s ({differ}); fine-tuning builds the source's "
                                                      "network, so leave model.params out to take its params"))
    if list(source.input_shape) != list(input_shape):
        problems.append((loc + ["model_id"], f"model {source.id} takes input {source.input_shape}, this dataset gives {list(input_shape)}"))
    if len(source.class_names) != num_classes and not init.reset_head:
        problems.append((loc + ["reset_head"], f"model {source.id} has {len(source.class_names)} classes, this dataset {num_classes}: set reset_head"))
    for i, name in enumerate(init.freeze):
        if name not in submodules:
            problems.append((loc + ["freeze", i], f"no submodule {name!r}; {spec.model.architecture} has {', '.join(submodules)}"))
    if problems:
        raise InvalidInput("incompatible init_from: " + "; ".join(msg for _, msg in problems), [detail(loc, msg) for loc, msg in problems])


# Names said letter by letter take "an" when the first letter's name starts with a vowel sound (an MLP, an RBM).
SPELLED_OUT = {"mlp", "rnn", "rbm", "lstm"}


def _a(word: str) -> str:
    vowel_sound = word[:1].lower() in "aeiou" or (word.lower() in SPELLED_OUT and word[:1].lower() in "fhlmnrsx")
    return f"{'an' if vowel_sound else 'a'} {word}"


def _check_validation_used(spec: JobSpec) -> None:
    """What watches a val_* metric needs a validation split: with none it would silently do nothing."""
    if spec.data.validation_fraction > 0:
        return
    t = spec.training
    watching = []
    if t.early_stopping is not None and t.early_stopping.monitor.startswith("val_"):
        watching.append((["body", "training", "early_stopping", "monitor"], f"early_stopping monitors {t.early_stopping.monitor}"))
    if t.lr_schedule.name == "plateau" and t.lr_schedule.monitor.startswith("val_"):
        watching.append((["body", "training", "lr_schedule", "monitor"], f"the plateau schedule monitors {t.lr_schedule.monitor}"))
    if watching:
        what = " and ".join(why for _, why in watching)
        message = (f"{what}, but data.validation_fraction is 0, so there is no validation metric: "
                   "set validation_fraction above 0, or monitor train_loss")
        raise InvalidInput(message, [detail(loc, message) for loc, _ in watching] + [detail(["body", "data", "validation_fraction"], "is 0")])


def _check_dataset_fits(spec: JobSpec, info: DatasetInfo) -> None:
    classifier = models.get(spec.model.architecture).task == "classify"  # known: params were validated first
    if classifier and info.task != "classification":
        raise InvalidInput(
            f"dataset {info.ref!r} has no labels; {spec.model.architecture} is a classifier",
            [detail(["body", "data", "dataset"], "a classifier needs a labelled dataset")],
        )
    fraction = spec.data.validation_fraction
    if fraction > 0 and info.task == "classification":
        held_out = int(info.num_samples * fraction)
        if held_out < info.num_classes or info.num_samples - held_out < info.num_classes:
            raise InvalidInput(
                f"validation_fraction {fraction} of {info.num_samples} samples cannot hold every one of {info.num_classes} classes on both sides",
                [detail(["body", "data", "validation_fraction"], "too small (or too large) for a stratified split")],
            )
        if info.class_counts and min(info.class_counts) < 2:
            rare = info.class_names[list(info.class_counts).index(min(info.class_counts))]
            raise InvalidInput(
                f"class {rare!r} has {min(info.class_counts)} sample(s); a stratified split needs at least 2",
                [detail(["body", "data", "validation_fraction"], "a class has too few samples to split")],
            )

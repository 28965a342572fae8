"""The checks a job spec passes before it is accepted, those that need the registry, the dataset
and (transfer learning) the source model, so a bad spec is a 422 at submit time, not a failed job."""

from __future__ import annotations

import dataclasses
from typing import Any

import models
from app.core import architectures, preprocessing
from app.core.datasets.catalog import DatasetInfo
from app.core.db.tables import TrainedModel
from app.core.errors import InvalidInput, detail
from app.core.jobs.spec import JobSpec


def validate_spec(spec: JobSpec, info: DatasetInfo, source: TrainedModel | None = None) -> dict[str, Any]:
    """Checks that need the registry, the dataset and (transfer learning) the source model.
    Returns the params with defaults filled."""
    if source is not None and source.architecture != spec.model.architecture:
        message = f"incompatible init_from: model {source.id} is a {source.architecture}, not a {spec.model.architecture}"
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
        arch.check(params, pre.input_shape, max(info.num_classes, 1), vocab_size=pre.vocab_size)
    except (preprocessing.IncompatibleInput, models.ArchitectureError) as exc:
        raise InvalidInput(str(exc), [detail(["body", "model"], str(exc))]) from None
    filled = dataclasses.asdict(params)
    if arch.task != "classify":
        _check_generative_options(spec, arch.name)
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
    return filled


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
        problems.append((["body", "model", "params"], f"params differ from model {source.id}'s {source.params}; weights would not fit"))
    if list(source.input_shape) != list(input_shape):
        problems.append((loc + ["model_id"], f"model {source.id} takes input {source.input_shape}, this dataset gives {list(input_shape)}"))
    if len(source.class_names) != num_classes and not init.reset_head:
        problems.append((loc + ["reset_head"], f"model {source.id} has {len(source.class_names)} classes, this dataset {num_classes}: set reset_head"))
    for i, name in enumerate(init.freeze):
        if name not in submodules:
            problems.append((loc + ["freeze", i], f"no submodule {name!r}; {spec.model.architecture} has {', '.join(submodules)}"))
    if problems:
        raise InvalidInput("incompatible init_from: " + "; ".join(msg for _, msg in problems), [detail(loc, msg) for loc, msg in problems])


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

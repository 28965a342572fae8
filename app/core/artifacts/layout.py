"""Every artifact key Kiln makes, in one place: datasets, job logs and checkpoints, models, exports
and batch-inference results. Nothing else spells a folder or file name of the store.

    datasets/<ds_id>/meta.json, train_x.npy, train_y.npy, ...   an upload, converted once
    datasets/.staging-<ds_id>/                                  an upload being converted (folder store)
    datasets/<ds_id>/manifest.json                              object store: each file's size and hash, written last
    jobs/<job_id>/log.txt                                       attempts, outcomes, tracebacks
    jobs/<job_id>/log.txt.parts/<time>-<n>                      the same in an object store: one object per append
    jobs/<job_id>/model.json                                    the model card checkpoints are served with
    jobs/<job_id>/checkpoints/step-0000000123.pt, best.pt, best.json
    jobs/<inf_id>/predictions.csv, predictions.npz              batch-inference results
    models/<mdl_id>/weights.safetensors, metadata.json          a finished model and its card
    models/<mdl_id>/model.onnx, model.torchscript.pt            exports, built on first ask
"""

from __future__ import annotations

import re

STEP_CHECKPOINT = re.compile(r"(?:^|/)step-(\d{10})\.pt$")


# -- datasets ----------------------------------------------------------------------------------------


def dataset_prefix(dataset_id: str) -> str:
    return f"datasets/{dataset_id}"


def staging_of(prefix: str) -> str:
    """Where a folder store fills a folder before renaming it to ``prefix`` (a dataset being converted)."""
    parent, _, name = prefix.rpartition("/")
    return f"{parent}/.staging-{name}" if parent else f".staging-{name}"


# An object store's completeness mark of a published folder: each file's size and sha256, written last.
FOLDER_MANIFEST = "manifest.json"


def appended_parts(key: str) -> str:
    """Where an object store keeps the appends to a text file (one object each: S3 cannot append)."""
    return f"{key}.parts"


DATASET_META = "meta.json"


def dataset_array(split: str, part: str) -> str:
    """The file name of one array of a converted dataset: ``train_x.npy``, ``test_lengths.npy``..."""
    return f"{split}_{part}.npy"


# -- jobs ----------------------------------------------------------------------------------------------


def job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}"


def job_log(job_id: str) -> str:
    return f"{job_prefix(job_id)}/log.txt"


def checkpoint_card(job_id: str) -> str:
    """The model card a training job's checkpoints are served with (``predict?checkpoint=latest``)."""
    return f"{job_prefix(job_id)}/model.json"


def checkpoints_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}/checkpoints"


def step_checkpoint(job_id: str, step: int) -> str:
    return f"{checkpoints_prefix(job_id)}/step-{step:010d}.pt"


def step_of(key: str) -> int | None:
    """The step of a step checkpoint's key; None for any other key (``best.pt``, a temporary file)."""
    match = STEP_CHECKPOINT.search(key)
    return int(match.group(1)) if match else None


def best_checkpoint(job_id: str) -> tuple[str, str]:
    """The checkpoint best by the monitored metric, and the JSON that says which it is and why."""
    prefix = checkpoints_prefix(job_id)
    return f"{prefix}/best.pt", f"{prefix}/best.json"


def inference_results(job_id: str, fmt: str) -> str:
    return f"{job_prefix(job_id)}/predictions.{fmt}"


# -- models --------------------------------------------------------------------------------------------

# A finished model's files, by kind: its weights, its card, and the exports built on first ask.
MODEL_FILES = {"safetensors": "weights.safetensors", "card": "metadata.json", "torchscript": "model.torchscript.pt", "onnx": "model.onnx"}


def model_prefix(model_id: str) -> str:
    return f"models/{model_id}"


def model_file(prefix: str, kind: str) -> str:
    """``kind``: safetensors (the weights), card, torchscript or onnx."""
    return f"{prefix}/{MODEL_FILES[kind]}"

"""``kiln datasets ...``, ``kiln models ...``, ``kiln predict`` and ``kiln login``."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from kiln_client.cli.output import console, fields, number, print_json, size, table, when
from kiln_client.client import Client
from kiln_client.config import write_config
from kiln_client.datasets import total_bytes
from kiln_client.models import IMAGE_TYPES


class InputError(ValueError):
    """A file or option the CLI cannot use, said before anything is sent."""


def upload_dataset(kiln: Client, args) -> int:
    options = _json_object(args.options, "--options") if args.options else None
    for path in args.files:
        if not Path(path).is_file():
            raise InputError(f"no such file: {path}")
    if args.output == "json":
        print_json(kiln.datasets.upload(*args.files, format=args.format, name=args.name, options=options))
        return 0
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console) as bar:
        task = bar.add_task(f"uploading {len(args.files)} file{'s' if len(args.files) > 1 else ''}", total=total_bytes(args.files))
        # A retried upload starts its bar again rather than running past 100%.
        dataset = kiln.datasets.upload(*args.files, format=args.format, name=args.name, options=options,
                                       progress=lambda n: bar.advance(task, n))
        bar.update(task, completed=bar.tasks[0].total)
    console.print(f"dataset [bold]{dataset['name']}[/bold] ({dataset['id']}): {dataset['num_samples']:,} samples, "
                  f"{dataset['num_classes']} classes, sample shape {dataset['sample_shape']}")
    return 0


def list_datasets(kiln: Client, args) -> int:
    items = list(kiln.datasets.list(limit=args.limit))
    if args.output == "json":
        print_json(items)
        return 0
    table(["id", "name", "format", "kind", "samples", "classes", "shape", "size", "created"], [
        (d["id"], d["name"], d["format"], d["kind"], f"{d['num_samples']:,}", d["num_classes"], "x".join(map(str, d["sample_shape"])),
         size(d["size_bytes"]), when(d["created_at"])) for d in items
    ])
    return 0


def get_dataset(kiln: Client, args) -> int:
    d = kiln.datasets.get(args.id)
    if args.output == "json":
        print_json(d)
        return 0
    fields([("id", d["id"]), ("name", d["name"]), ("format", d["format"]), ("kind", d["kind"]), ("task", d["task"]),
            ("samples", f"{d['num_samples']:,} (+{d['num_test_samples']:,} test)"), ("sample shape", d["sample_shape"]),
            ("classes", ", ".join(d["class_names"][:20]) + (" …" if len(d["class_names"]) > 20 else "")), ("size", size(d["size_bytes"])),
            ("sha256", d["sha256"]), ("created", when(d["created_at"]))])
    return 0


def delete_dataset(kiln: Client, args) -> int:
    kiln.datasets.delete(args.id)
    if args.output != "json":
        console.print(f"deleted dataset {args.id}")
    return 0


def list_models(kiln: Client, args) -> int:
    items = [m.data for m in kiln.models.list(limit=args.limit)]
    if args.output == "json":
        print_json(items)
        return 0
    table(["id", "name", "architecture", "classes", "parameters", "accuracy", "created"], [
        (m["id"], m["name"], m["architecture"], len(m["class_names"]), f"{m['parameter_count']:,}", _accuracy(m["metrics"]),
         when(m["created_at"])) for m in items
    ])
    return 0


def get_model(kiln: Client, args) -> int:
    m = kiln.models.get(args.id).data
    if args.output == "json":
        print_json(m)
        return 0
    fields([("id", m["id"]), ("name", m["name"]), ("architecture", m["architecture"]), ("sample shape", m["sample_shape"]),
            ("classes", ", ".join(m["class_names"][:20])), ("parameters", f"{m['parameter_count']:,}"), ("size", size(m["size_bytes"])),
            ("metrics", _metric_line(m["metrics"])), ("job", m.get("job_id")), ("created", when(m["created_at"]))])
    return 0


def export_model(kiln: Client, args) -> int:
    path = kiln.models.get(args.id).export(args.out or f"{args.id}.{args.format}", format=args.format)
    if args.output == "json":
        print_json({"path": str(path), "bytes": path.stat().st_size})
    else:
        console.print(f"wrote {path} ({size(path.stat().st_size)})")
    return 0


def predict(kiln: Client, args) -> int:
    model = kiln.models.get(args.model)
    images = [p for p in args.files if Path(p).suffix.lower() in IMAGE_TYPES]
    if images and len(images) != len(args.files):
        raise InputError("give images alone, or .npy/.json files alone: one request takes one kind")
    for path in args.files:
        if not Path(path).is_file():
            raise InputError(f"no such file: {path}")
    if images:
        names, answer = [Path(p).name for p in images], model.predict_images(images, top_k=args.top_k)
    else:
        samples: list[Any] = []
        names = []
        for path in args.files:
            loaded = _samples(Path(path))
            samples.extend(loaded)
            names.extend(f"{Path(path).name}[{i}]" for i in range(len(loaded)))
        answer = model.predict(samples, top_k=args.top_k)
    if args.output == "json":
        print_json({"predictions": answer.predictions, "probabilities": answer.probabilities, "top_k": answer.top_k})
        return 0
    top = answer.top_k or [[{"class": c, "probability": max(p)}] for c, p in zip(answer.predictions, answer.probabilities)]
    table(["sample", "prediction", "probability"] + (["top %d" % args.top_k] if answer.top_k else []), [
        (name, picks[0]["class"], f"{picks[0]['probability']:.3f}")
        + ((", ".join(f"{p['class']} {p['probability']:.3f}" for p in picks),) if answer.top_k else ())
        for name, picks in zip(names, top)
    ])
    return 0


def login(kiln: Client, args) -> int:
    """Checks the URL and key with a real call, then saves them for the next commands."""
    if not getattr(args, "url", None):
        raise InputError("kiln login needs --url, the server to log in to")
    key = getattr(args, "key", None) or getpass.getpass(f"API key for {args.url}: ")
    with Client(args.url, key) as checked:
        usage = checked.usage()
    path = write_config(checked.url, key)
    console.print(f"logged in to {checked.url} (jobs: {sum(usage['jobs'].values())}); saved to {path}")
    return 0


def _samples(path: Path) -> list[Any]:
    if path.suffix.lower() == ".npy":
        try:
            import numpy as np
        except ImportError:
            raise InputError("reading .npy needs numpy: pip install 'kiln-client[numpy]'") from None
        return np.load(path, allow_pickle=False).tolist()  # never unpickle a file
    if path.suffix.lower() == ".json":
        try:
            value = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} is not valid JSON: {exc}") from None
        value = value.get("inputs") if isinstance(value, dict) else value
        if not isinstance(value, list):
            raise InputError(f"{path} must hold a list of samples, or {{\"inputs\": [...]}}")
        return value
    raise InputError(f"{path}: predict takes PNG/JPEG images, .npy arrays or .json samples")


def _json_object(raw: str, flag: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"{flag} must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise InputError(f"{flag} must be a JSON object")
    return value


def _accuracy(metrics: dict[str, float]) -> str | None:
    """The held-out accuracy a person compares models by: on the test split where there is one."""
    for name in ("test_accuracy", "val_accuracy"):
        if name in metrics:
            return f"{metrics[name]:.4f} ({name.split('_')[0]})"
    return None


def _metric_line(values: dict[str, float]) -> str:
    return "  ".join(f"{k} {number(v)}" for k, v in sorted(values.items()))

"""``kiln``: the client command line, on Kiln's public REST API.

    kiln submit job.yaml [--follow] [--name N] [--epochs E] [--dataset D] [--label k=v]
    kiln jobs list|get|follow|cancel|delete|logs|metrics ...
    kiln datasets upload FILE... --format F | list | get | delete
    kiln models list | get | export ID --format onnx -o FILE
    kiln predict MODEL FILE... [--top-k K]
    kiln login --url URL

Where an installation also holds the server (``make run``'s), its commands (``up``, ``api``,
``worker``, ``db``, ``keys``, ``tenants``) are found through the ``kiln.commands`` entry points and
run as they always did. Errors print the API's message and each field at fault, exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

from kiln_client.cli import artifact_commands as artifacts
from kiln_client.cli import jobs_commands as jobs
from kiln_client.cli.output import errors
from kiln_client.cli.spec_file import SpecError
from kiln_client.client import Client
from kiln_client.config import config_path
from kiln_client.errors import ApiError, ConnectionFailed, KilnError, Unauthorized

STATES = ["queued", "running", "succeeded", "failed", "cancelled"]


def server_commands() -> dict[str, object]:
    """The server's commands, where the server is installed beside the client."""
    return {ep.name: ep for ep in entry_points(group="kiln.commands")}


def parser(server: dict[str, object]) -> argparse.ArgumentParser:
    # Accepted before the command and after it (kiln --output json jobs list, kiln jobs list --output json).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="the Kiln server (else KILN_URL, `kiln login`, the local server)")
    common.add_argument("--key", default=argparse.SUPPRESS, help="an API key (else KILN_API_KEY, `kiln login`, ./var/api-key)")
    common.add_argument("--output", "-o", default=argparse.SUPPRESS, metavar="{table,json}",
                        help="json: the API's JSON, for scripts (jobs metrics: csv too)")

    root = argparse.ArgumentParser(prog="kiln", description="Kiln: training as a service", parents=[common],
                                   epilog=f"server commands here: {', '.join(sorted(server))}" if server else None)
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def leaf(parent, name: str, func, help: str, **kwargs) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, parents=[common], **kwargs)
        p.set_defaults(func=func)
        return p

    p = leaf(sub, "submit", jobs.submit, "submit a job from a JSON or YAML spec")
    p.add_argument("spec", help="job.json or job.yaml")
    p.add_argument("--follow", "-f", action="store_true", help="a live progress bar until the job ends; exit code 0 succeeded, 1 failed, 2 cancelled")
    p.add_argument("--name")
    p.add_argument("--epochs", type=int)
    p.add_argument("--dataset", help="a dataset id (ds_...) or builtin:digits")
    p.add_argument("--label", action="append", metavar="KEY=VALUE", help="repeatable")

    group = sub.add_parser("jobs", help="training jobs").add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    p = leaf(group, "list", jobs.list_jobs, "your jobs, newest first")
    p.add_argument("--state", choices=STATES)
    p.add_argument("--label", action="append", metavar="KEY=VALUE", help="repeatable; every one must match")
    p.add_argument("--limit", type=int, default=50)
    for name, func, what in (("get", jobs.get_job, "one job"), ("follow", jobs.follow_job, "a live progress bar until the job ends"),
                             ("cancel", jobs.cancel_job, "ask a job to stop")):
        leaf(group, name, func, what).add_argument("id")
    p = leaf(group, "delete", jobs.delete_job, "a finished job, its metrics, checkpoints and log")
    p.add_argument("id")
    p.add_argument("--with-model", action="store_true", help="its model too")
    p = leaf(group, "logs", jobs.logs, "a job's log")
    p.add_argument("id")
    p.add_argument("--follow", "-f", action="store_true", help="stream it until the job ends")
    p = leaf(group, "metrics", jobs.metrics, "a job's metric series (a summary table, --output csv for every point)")
    p.add_argument("id")
    p.add_argument("--names", help="comma-separated, e.g. train_loss,val_accuracy")
    p.add_argument("--max-points", type=int, default=1000, help="per series (longer ones are downsampled by the server)")
    p.set_defaults(output_choices=["table", "json", "csv"])

    group = sub.add_parser("datasets", help="datasets").add_subparsers(dest="datasets_command", required=True, metavar="ACTION")
    p = leaf(group, "upload", artifacts.upload_dataset, "upload files as one dataset (with a progress bar)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", required=True, help="npz, csv, idx, image-zip or sequences")
    p.add_argument("--name", help="default: the first file's name")
    p.add_argument("--options", help='the format\'s options as JSON, e.g. \'{"label_column": "species"}\'')
    leaf(group, "list", artifacts.list_datasets, "your datasets").add_argument("--limit", type=int, default=50)
    leaf(group, "get", artifacts.get_dataset, "one dataset").add_argument("id")
    leaf(group, "delete", artifacts.delete_dataset, "delete a dataset").add_argument("id")

    group = sub.add_parser("models", help="trained models").add_subparsers(dest="models_command", required=True, metavar="ACTION")
    leaf(group, "list", artifacts.list_models, "your models").add_argument("--limit", type=int, default=50)
    leaf(group, "get", artifacts.get_model, "one model").add_argument("id")
    p = leaf(group, "export", artifacts.export_model, "download a model as one file")
    p.add_argument("id")
    p.add_argument("--format", choices=["onnx", "torchscript", "safetensors"], default="onnx")
    p.add_argument("-O", "--out", help="the file to write (default: ID.FORMAT)")

    p = leaf(sub, "predict", artifacts.predict, "the model's predictions for PNG/JPEG images, .npy arrays or .json samples")
    p.add_argument("model")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--top-k", type=int, default=3)

    leaf(sub, "login", artifacts.login, f"check a server (--url) and key, and save them in {config_path()}")

    for name in sorted(server):
        sub.add_parser(name, help="server command (kiln %s --help)" % name, add_help=False)
    return root


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    server = server_commands()
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in server:
        return server[first].load()(argv)  # type: ignore[attr-defined]
    args = parser(server).parse_args(argv)
    args.output = getattr(args, "output", "table")
    if args.output not in getattr(args, "output_choices", ["table", "json"]):
        errors.print(f"kiln: --output takes {' or '.join(getattr(args, 'output_choices', ['table', 'json']))}, not {args.output!r}")
        return 2
    try:
        with Client(getattr(args, "url", None), getattr(args, "key", None)) as kiln:
            return args.func(kiln, args)
    except ApiError as exc:
        return _api_error(exc)
    except ConnectionFailed as exc:
        errors.print(f"kiln: {exc.message}\n  is the server running? `make run` starts one here; --url or KILN_URL names another")
        return 1
    except (KilnError, SpecError, artifacts.InputError, ValueError) as exc:
        errors.print(f"kiln: {exc}")
        return 1


def _api_error(exc: ApiError) -> int:
    errors.print(f"kiln: {exc.message}", markup=False)
    for d in exc.details:
        errors.print(f"  {d.path}: {d.msg}", markup=False)
    if isinstance(exc, Unauthorized):
        errors.print("  give a key with --key or KILN_API_KEY, or save one with `kiln login`", markup=False)
    return 1


if __name__ == "__main__":
    sys.exit(main())

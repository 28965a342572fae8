"""``kiln submit`` and ``kiln jobs ...``."""

from __future__ import annotations

import csv
import sys

from kiln_client.cli import spec_file
from kiln_client.cli.follow import EXIT_CODES, follow
from kiln_client.cli.output import console, duration, errors, fields, number, print_json, table, when
from kiln_client.client import Client
from kiln_client.errors import check_stream
from kiln_client.jobs import Job


def submit(kiln: Client, args) -> int:
    spec = spec_file.load(args.spec, name=args.name, epochs=args.epochs, dataset=args.dataset, labels=args.label)
    job = kiln.jobs.submit(spec)
    if args.output == "json" and not args.follow:
        print_json(job.data)
        return 0
    if args.output != "json":
        console.print(f"submitted job [bold]{job.name}[/bold] ({job.id}), {job.state}")
    return _follow(job, args.output) if args.follow else 0


def follow_job(kiln: Client, args) -> int:
    return _follow(kiln.jobs.get(args.id), args.output)


def _follow(job: Job, output: str) -> int:
    """Ctrl-C stops following, never the job."""
    try:
        if output == "json":
            for event in job.events():
                print_json({"id": event.id, "event": event.kind, "data": event.data})
            return EXIT_CODES.get(job.refresh().state, 1)
        return follow(job)
    except KeyboardInterrupt:
        errors.print(f"\nStopped following; job {job.id} goes on. To cancel it: kiln jobs cancel {job.id}")
        return 130


def list_jobs(kiln: Client, args) -> int:
    labels = dict(_label(raw) for raw in args.label or [])
    jobs = [job.data for job in kiln.jobs.list(state=args.state, labels=labels, limit=args.limit)]
    if args.output == "json":
        print_json(jobs)
        return 0
    table(["id", "name", "state", "epoch", "progress", "created", "labels"], [
        (j["id"], j["name"], j["state"], f"{j['progress']['epoch']}/{j['progress']['epochs']}", f"{j['progress']['fraction']:.0%}",
         when(j["created_at"]), ",".join(f"{k}={v}" for k, v in j["labels"].items()) or None)
        for j in jobs
    ])
    return 0


def get_job(kiln: Client, args) -> int:
    job = kiln.jobs.get(args.id).data
    if args.output == "json":
        print_json(job)
        return 0
    p = job["progress"]
    fields([
        ("id", job["id"]), ("name", job["name"]), ("state", job["state"]), ("attempt", job["attempt"]),
        ("progress", f"epoch {p['epoch']}/{p['epochs']}, step {p['step']}/{p['total_steps']} ({p['fraction']:.0%})"),
        ("elapsed", duration(p.get("elapsed_seconds"))), ("eta", duration(p.get("eta_seconds"))),
        ("queue", f"position {job['queue_position']}, waiting for {job['waiting_for']}" if job.get("queue_position") is not None else None),
        ("metrics", "  ".join(f"{k} {number(v)}" for k, v in sorted(job["metrics"].items())) or None),
        ("error", (job.get("error") or {}).get("message")), ("model", job.get("model_id")),
        ("labels", ",".join(f"{k}={v}" for k, v in job["labels"].items()) or None),
        ("created", when(job["created_at"])), ("finished", when(job.get("finished_at"))),
    ])
    return 0


def cancel_job(kiln: Client, args) -> int:
    job = kiln.jobs.get(args.id).cancel()
    if args.output == "json":
        print_json(job.data)
    else:
        console.print(f"job {job.id}: cancel requested ({job.state})")
    return 0


def delete_job(kiln: Client, args) -> int:
    kiln.jobs.get(args.id).delete(with_model=args.with_model)
    if args.output != "json":
        console.print(f"deleted job {args.id}" + (" and its model" if args.with_model else ""))
    return 0


def logs(kiln: Client, args) -> int:
    if not args.follow:
        sys.stdout.write(kiln.jobs.get(args.id).logs())
        return 0
    try:
        with kiln.transport.http.stream("GET", f"/v1/jobs/{args.id}/logs", params={"follow": "true"}, timeout=None) as response:
            check_stream(response)
            for text in response.iter_text():
                sys.stdout.write(text)
                sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    return 0


def metrics(kiln: Client, args) -> int:
    names = [n for n in args.names.split(",") if n] if args.names else None
    series = kiln.jobs.get(args.id).metrics(names=names, max_points=args.max_points)
    if args.output == "json":
        print_json(series)
    elif args.output == "csv":
        out = csv.writer(sys.stdout, lineterminator="\n")  # not the csv module's CRLF: this is a text stream
        out.writerow(["name", "step", "epoch", "value", "time"])
        for name, points in sorted(series.items()):
            out.writerows((name, p["step"], p["epoch"], p["value"], p["time"]) for p in points)
    else:
        table(["name", "points", "last step", "last", "min", "max"], [
            (name, len(points), points[-1]["step"], number(points[-1]["value"]), number(min(p["value"] for p in points)),
             number(max(p["value"] for p in points)))
            for name, points in sorted(series.items()) if points
        ])
    return 0


def _label(raw: str) -> tuple[str, str]:
    key, sep, value = raw.partition("=")
    if not sep:
        key, sep, value = raw.partition(":")
    if not sep or not key:
        raise spec_file.SpecError(f"--label takes key=value, not {raw!r}")
    return key, value


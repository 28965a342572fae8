"""``--follow``: a live progress bar fed by the job's event stream, then a short summary.

The bar shows epoch, step/total, elapsed, the server's ETA and the latest train_loss, val_loss
and val_accuracy; log lines scroll above it. The exit code is the job's outcome.
"""

from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn
from rich.text import Text

from kiln_client.cli.output import console, duration, number
from kiln_client.jobs import Job

SHOWN = ("train_loss", "val_loss", "val_accuracy")
EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 2}


class Elapsed(ProgressColumn):
    """The job's own running time (not this client's): what the server said, plus the time since."""

    def render(self, task: Task) -> Text:
        start, frozen = task.fields.get("running_since"), task.fields.get("frozen")
        seconds = time.monotonic() - start if start is not None else frozen
        return Text(duration(seconds), style="progress.elapsed")


class JobProgress(Progress):
    """The bar, with the latest metrics on a line of their own beneath it (they would crowd an
    80-column bar off the screen)."""

    metrics_line = ""

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        if self.metrics_line:
            yield Text("  " + self.metrics_line)


def follow(job: Job) -> int:
    """Follows ``job`` to its end; its exit code (0 succeeded, 1 failed, 2 cancelled)."""
    data = job.refresh().data
    progress = data["progress"]
    latest: dict[str, float] = {name: value for name, value in data.get("metrics", {}).items() if name in SHOWN}
    columns = [
        SpinnerColumn(finished_text="[green]✓"), TextColumn("{task.description}"), BarColumn(bar_width=24),
        TextColumn("epoch {task.fields[epoch]}"), TextColumn("step {task.completed:.0f}/{task.total:.0f}"), Elapsed(),
        TextColumn("ETA {task.fields[eta]}"),
    ]
    with JobProgress(*columns, console=console, refresh_per_second=4) as bar:
        bar.metrics_line = _metrics(latest)
        task = bar.add_task(_describe(data, data["state"]), total=progress.get("total_steps") or 1, completed=progress.get("step") or 0,
                            epoch=_epoch(progress.get("epoch", 0), progress["epochs"]), eta=duration(progress.get("eta_seconds")),
                            running_since=_running_since(data), frozen=None)
        for event in job.events():
            if event.kind == "state":
                state = event.data["state"]
                if state == "running" and bar.tasks[task].fields["running_since"] is None:
                    bar.update(task, running_since=time.monotonic())
                shown = "cancelling" if event.data.get("cancel_requested") else state
                bar.update(task, description=_describe(data, shown, event.data.get("attempt")))
            elif event.kind == "progress":
                p = event.data
                bar.update(task, completed=p["step"], total=p.get("total_steps") or 1, epoch=_epoch(p["epoch"], progress["epochs"]),
                           eta=duration(p.get("eta_seconds")))
            elif event.kind == "metric":
                latest.update({p["name"]: p["value"] for p in event.data["points"] if p["name"] in SHOWN})
                bar.metrics_line = _metrics(latest)
            elif event.kind == "log":
                bar.console.print(Text(event.data["line"].rstrip("\n"), style="dim"))
            elif event.kind == "end":  # the job's own running time, as the server measured it
                bar.update(task, eta="-", running_since=None, frozen=job.refresh().data["progress"].get("elapsed_seconds"))
    return summary(job)


def summary(job: Job) -> int:
    data = job.data
    took = data["progress"].get("elapsed_seconds")
    if job.state == "succeeded":
        console.print(f"[green]✓[/green] job {data['name']} ({job.id}) succeeded in {duration(took)}")
        console.print(f"  model    {data['model_id']}")
    elif job.state == "failed":
        error = data.get("error") or {}
        console.print(f"[red]✗[/red] job {data['name']} ({job.id}) failed: {error.get('message', 'no reason recorded')}")
    else:
        console.print(f"[yellow]■[/yellow] job {data['name']} ({job.id}) was {job.state}")
    final = {name: value for name, value in data.get("metrics", {}).items() if name.endswith(("loss", "accuracy"))}
    if final:
        console.print("  metrics  " + "  ".join(f"{name} {number(value)}" for name, value in sorted(final.items())))
    return EXIT_CODES.get(job.state, 1)


def _describe(data: dict[str, Any], state: str, attempt: int | None = None) -> str:
    again = f" (attempt {attempt})" if attempt and attempt > 1 else ""
    return f"{data['name']} [bold]{state}[/bold]{again}"


def _epoch(done: int, epochs: int) -> str:
    return f"{min(done + 1, epochs)}/{epochs}"  # the epoch under way; the last once all are done


def _metrics(latest: dict[str, float]) -> str:
    return "  ".join(f"{name} {number(latest[name])}" for name in SHOWN if name in latest)


def _running_since(data: dict[str, Any]) -> float | None:
    if data["state"] != "running" or data["progress"].get("elapsed_seconds") is None:
        return None
    return time.monotonic() - data["progress"]["elapsed_seconds"]

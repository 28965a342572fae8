"""How a training loop talks to the outside world, and nothing more (after Determined's core
context): report metrics, record progress, ask whether to stop, save and load checkpoints.

The training loop (``worker.training.loop``) only sees this interface. ``LocalContext`` is the in-memory twin used by tests and
benchmarks; ``worker.job_context.JobContext`` is the one backed by the database.
"""

from __future__ import annotations

from typing import Any, Protocol


class TrainingContext(Protocol):
    def report(self, metrics: dict[str, float], *, step: int, epoch: int) -> None:
        """Buffer metric values at a step; must be cheap (called from the hot loop)."""

    def set_progress(self, *, epoch: int, step: int, total_steps: int) -> None: ...

    def stop_reason(self) -> str | None:
        """None to go on, else why to stop ("cancelled", "lease_lost", "shutdown"). Must be cheap."""

    def save_checkpoint(self, state: dict[str, Any], *, epoch: int, step: int, metrics: dict[str, float] | None) -> None:
        """``metrics`` are the epoch's when the checkpoint ends an epoch, None mid-epoch."""

    def load_checkpoint(self) -> dict[str, Any] | None: ...


class LocalContext:
    """Keeps everything in memory. Tests and benchmarks run the real loop through it."""

    def __init__(self, stop_after_step: int | None = None, stop_with: str = "cancelled"):
        self.points: list[tuple[str, int, int, float]] = []
        self.progress: dict[str, int] = {}
        self.checkpoints: list[dict[str, Any]] = []
        self.stop_after_step = stop_after_step
        self.stop_with = stop_with
        self._batches = 0

    def report(self, metrics: dict[str, float], *, step: int, epoch: int) -> None:
        self.points.extend((name, step, epoch, value) for name, value in metrics.items())

    def set_progress(self, *, epoch: int, step: int, total_steps: int) -> None:
        self.progress = {"epoch": epoch, "step": step, "total_steps": total_steps}

    def stop_reason(self) -> str | None:
        self._batches += 1  # the loop asks once after every batch
        if self.stop_after_step is not None and self._batches >= self.stop_after_step:
            return self.stop_with
        return None

    def save_checkpoint(self, state: dict[str, Any], *, epoch: int, step: int, metrics: dict[str, float] | None) -> None:
        self.checkpoints.append(state)

    def load_checkpoint(self) -> dict[str, Any] | None:
        return self.checkpoints[-1] if self.checkpoints else None

    def series(self, name: str) -> list[tuple[int, float]]:
        return [(step, value) for n, step, _, value in self.points if n == name]

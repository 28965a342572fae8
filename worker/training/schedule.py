"""Learning-rate schedules with linear warm-up, as a pure function of the step (so resuming at
step S gives the same rate as never stopping), except reduce-on-plateau, whose state is
checkpointed."""

from __future__ import annotations

import math
from typing import Any


class Schedule:
    def __init__(self, spec: dict[str, Any] | None, base_lr: float, steps_per_epoch: int, total_steps: int):
        spec = spec or {"name": "constant"}
        self.name = spec["name"]
        self.spec = spec
        self.base_lr = base_lr
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = max(total_steps, 1)
        self.warmup_steps = int(round(spec.get("warmup_epochs", 0.0) * steps_per_epoch))
        self.plateau_scale = 1.0
        self.plateau_best = math.inf
        self.plateau_bad_epochs = 0

    @property
    def active(self) -> bool:
        """Whether the rate ever differs from the optimizer's own."""
        return self.name != "constant" or self.warmup_steps > 0

    def lr(self, step: int) -> float:
        """The rate for the optimizer step that follows ``step`` completed steps."""
        if self.name == "onecycle":
            return self._onecycle(step)
        if self.warmup_steps and step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        after = step - self.warmup_steps
        span = max(self.total_steps - self.warmup_steps, 1)
        if self.name == "step":
            return self.base_lr * self.spec.get("gamma", 0.1) ** (step // (self.spec.get("step_epochs", 10) * self.steps_per_epoch))
        if self.name == "cosine":
            floor = self.spec.get("min_lr", 0.0)
            return floor + (self.base_lr - floor) * 0.5 * (1 + math.cos(math.pi * min(after / span, 1.0)))
        if self.name == "plateau":
            return self.base_lr * self.plateau_scale
        return self.base_lr

    def _onecycle(self, step: int) -> float:
        # Leslie Smith's 1cycle: up from base/25 to base over the first 30 %, cosine down to base/1e4.
        peak, start, end = self.base_lr, self.base_lr / 25, self.base_lr / 1e4
        up = max(int(0.3 * self.total_steps), 1)
        if step < up:
            return start + (peak - start) * 0.5 * (1 - math.cos(math.pi * step / up))
        t = min((step - up) / max(self.total_steps - up, 1), 1.0)
        return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * t))

    def end_of_epoch(self, metrics: dict[str, float]) -> None:
        if self.name != "plateau":
            return
        value = metrics.get(self.spec.get("monitor", "val_loss"), metrics.get("train_loss"))
        if value is None:
            return
        if value < self.plateau_best * (1 - 1e-4):
            self.plateau_best, self.plateau_bad_epochs = value, 0
        else:
            self.plateau_bad_epochs += 1
            if self.plateau_bad_epochs > self.spec.get("patience", 2):
                self.plateau_scale *= self.spec.get("factor", 0.1)
                self.plateau_bad_epochs = 0

    def state_dict(self) -> dict[str, float]:
        return {"plateau_scale": self.plateau_scale, "plateau_best": self.plateau_best, "plateau_bad_epochs": self.plateau_bad_epochs}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.plateau_scale = float(state["plateau_scale"])
        self.plateau_best = float(state["plateau_best"])
        self.plateau_bad_epochs = int(state["plateau_bad_epochs"])

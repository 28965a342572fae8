"""What this worker process has used: its peak resident memory, reset at the start of each attempt
so each attempt's own peak is recorded (Linux's VmHWM; elsewhere the process's peak so far)."""

from __future__ import annotations

import resource
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_memory() -> None:
    try:
        CLEAR_REFS.write_text("5")  # resets VmHWM to the current resident set
    except OSError:
        pass  # not Linux, or not allowed: the peak stays the process's


def peak_memory_bytes() -> int:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux

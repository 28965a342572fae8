"""What the CLI prints: the API's JSON for scripts (``--output json``), small tables for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Column, Table

console = Console(highlight=False, soft_wrap=True)  # long lines stay whole: scripts grep them
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    """The first column (an id, what a person copies into the next command) is never shortened;
    the others wrap to fit the terminal."""
    cells = [["-" if cell is None else str(cell) for cell in row] for row in rows]
    first = Column(columns[0], no_wrap=True, min_width=max((len(row[0]) for row in cells), default=0))
    out = Table(first, *columns[1:], title=title, box=None, header_style="bold", pad_edge=False)
    for row in cells:
        out.add_row(*row)
    console.print(out)


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """One resource as ``name  value`` lines."""
    width = max(len(name) for name, _ in pairs)
    for name, value in pairs:
        console.print(f"[bold]{name:<{width}}[/bold]  {'-' if value is None else value}", markup=True, soft_wrap=True)


def when(iso: str | None) -> str | None:
    """``2026-12-04 16:25`` from the API's ISO time, in UTC as the API gives it."""
    if not iso:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)

"""Progress bars with counts and rates (rich), shared by every long stage."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class StageProgress:
    """A bar for one stage: items done of total, items/s and, for generation, tokens/s."""

    def __init__(self, progress: Progress, task: TaskID, unit: str) -> None:
        self._progress = progress
        self._task = task
        self._unit = unit
        self._start = time.perf_counter()
        self._items = 0
        self._tokens = 0

    def advance(self, items: int, tokens: int = 0) -> None:
        self._items += items
        self._tokens += tokens
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        rate = f"{self._items / elapsed:.2f} {self._unit}/s"
        if self._tokens:
            rate += f", {self._tokens / elapsed:.0f} tok/s"
        self._progress.update(self._task, advance=items, rate=rate)

    @property
    def tokens(self) -> int:
        return self._tokens


@contextmanager
def stage_progress(
    description: str, total: int, *, unit: str = "items", console: Console | None = None, done: int = 0
) -> Iterator[StageProgress]:
    """Show a progress bar while the block runs; ``done`` items are counted as already finished."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total, completed=done, rate="")
        yield StageProgress(progress, task, unit)

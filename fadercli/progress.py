"""Progress bars on stderr, drawn only at a terminal (rich is imported only when one is drawn)."""

from __future__ import annotations

import sys
from types import SimpleNamespace


class _Silent:
    """A bar that draws nothing: what callers use of rich's Progress, without importing rich
    (a few hundredths of a second at every command's start)."""

    live = SimpleNamespace(is_started=False)

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def advance(self, *args, **kwargs) -> None:
        return None

    def update(self, *args, **kwargs) -> None:
        return None


def progress_bar(enabled: bool, *, info: bool = False, percent: bool = False):
    """A rich Progress for counted work (description, bar, n/total or a percentage, time left[, the
    task's `info` field]).

    Silent unless `enabled` and stderr is a terminal; results on stdout stay clean.
    """
    if not (enabled and sys.stderr.isatty()):
        return _Silent()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    count = TaskProgressColumn() if percent else MofNCompleteColumn()
    columns = [TextColumn("{task.description}"), BarColumn(), count, TimeRemainingColumn()]
    if info:
        columns.append(TextColumn("{task.fields[info]}"))
    return Progress(*columns, console=Console(stderr=True), transient=False)

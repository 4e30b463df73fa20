"""Progress bars on stderr, drawn only at a terminal (rich is imported only when one is made)."""

from __future__ import annotations


def progress_bar(enabled: bool, *, info: bool = False):
    """A rich Progress for counted work (description, bar, n/total, time left[, the task's `info` field]).

    Disabled (it draws nothing) unless `enabled` and stderr is a terminal; results on stdout stay clean.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    if info:
        columns.append(TextColumn("{task.fields[info]}"))
    return Progress(*columns, console=console, disable=not (enabled and console.is_terminal), transient=False)

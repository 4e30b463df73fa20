"""Progress bars on stderr, drawn only at a terminal (rich is imported only when one is drawn); and
checkpoints, the points between the stages of long work where other work may be let in first."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace

_hooks = threading.local()


def checkpoint() -> None:
    """Mark the end of a stage of long work (a detection pass, a tile, a face looked at again). Work
    that installed a hook on this thread (`checkpoints`) runs it here: `fader serve` lets a waiting
    slider render or camera frame in before the rest of an upload's analysis. Elsewhere, nothing."""
    hook = getattr(_hooks, "hook", None)
    if hook is not None:
        hook()


@contextmanager
def checkpoints(hook: Callable[[], None] | None) -> Iterator[None]:
    """Call `hook` at every checkpoint() reached on this thread inside the block (None: none are,
    say for work the hook itself runs)."""
    previous = getattr(_hooks, "hook", None)
    _hooks.hook = hook
    try:
        yield
    finally:
        _hooks.hook = previous


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

"""Progress bars on stderr, drawn only at a terminal (rich is imported only when one is drawn); and
for long work that runs beside work someone watches: checkpoints, the points between its stages
where other work may be let in first, and a lower CPU priority for the threads that run it."""

from __future__ import annotations

import os
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


BACKGROUND_NICE = 10  # CFS gives a thread at nice 10 about a tenth of a core shared with one at 0


def lower_priority() -> None:
    """Lower the calling thread's CPU priority (Linux, where niceness is a thread's: nice +10), for
    a thread that runs work no one is waiting on from one moment to the next; elsewhere, or where
    the system refuses, nothing. It cannot be raised again: give such work threads of its own."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
        except OSError:
            pass


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

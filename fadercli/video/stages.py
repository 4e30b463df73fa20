"""Frames passed between threads, so that a clip's work uses more than one core.

While the models run on the caller's thread (torch works there, at its own thread count), a
`Stage` thread decodes and crops the frames ahead of them and another pastes the edits back and
encodes behind them: PyAV, OpenCV and torch let the interpreter go while they compute. Frames go
from one to the next through `Channel`s, bounded in frames and in bytes, so memory stays flat
whatever the clip's length or size. A stage that fails cancels its channels: the threads on the
other side stop waiting (`Closed`), and the caller raises the stage's own error (`Stage.check`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

POLL_SECONDS = 0.1  # how often a waiting caller gets its `waiting` callback (progress, say)


class Closed(Exception):
    """The channel was cancelled: a stage on the other side failed or was stopped."""


class Channel:
    """A queue of items between two threads, holding at most `items` of them and `nbytes` bytes
    (always at least one item, however large)."""

    def __init__(self, items: int, nbytes: float):
        self.max_items, self.max_bytes = items, nbytes
        self._queue: deque[tuple[Any, int]] = deque()
        self._bytes = 0
        self._closed = False  # no more items will come
        self._cancelled = False
        self._changed = threading.Condition()

    def put(self, item: Any, nbytes: int = 0, waiting: Callable[[], None] | None = None) -> None:
        with self._changed:
            while (
                not self._cancelled
                and self._queue
                and (len(self._queue) >= self.max_items or self._bytes + nbytes > self.max_bytes)
            ):
                self._wait(waiting)
            if self._cancelled:
                raise Closed
            self._queue.append((item, nbytes))
            self._bytes += nbytes
            self._changed.notify_all()

    def items(self, waiting: Callable[[], None] | None = None) -> Iterator[Any]:
        """The items in order, until the channel is closed and empty."""
        while True:
            with self._changed:
                while not self._queue and not self._closed and not self._cancelled:
                    self._wait(waiting)
                if self._cancelled:
                    raise Closed
                if not self._queue:
                    return
                item, nbytes = self._queue.popleft()
                self._bytes -= nbytes
                self._changed.notify_all()
            yield item

    def close(self) -> None:
        """No more items: the reader ends once it has the ones already put."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def cancel(self) -> None:
        """Stop both sides now (what is still queued is dropped)."""
        with self._changed:
            self._cancelled = True
            self._queue.clear()
            self._changed.notify_all()

    def _wait(self, waiting: Callable[[], None] | None) -> None:
        if waiting is None:
            self._changed.wait()
            return
        if not self._changed.wait(POLL_SECONDS):
            self._changed.release()  # the callback runs without the lock held
            try:
                waiting()
            finally:
                self._changed.acquire()


class Stage(threading.Thread):
    """`work()` on a thread of its own; if it fails, `channels` are cancelled and `check()` raises
    the failure in the caller's thread."""

    def __init__(self, name: str, work: Callable[[], None], *channels: Channel):
        super().__init__(name=name, daemon=True)
        self.work, self.channels = work, channels
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.work()
        except Closed:
            pass
        except BaseException as e:
            self.error = e
            for channel in self.channels:
                channel.cancel()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

"""Model work off the event loop: a few threads, a bounded queue, and a shutdown that does not wait.

A request that would queue more than `waiting` jobs behind the busy threads is answered 503 with
Retry-After at once (code `busy`) instead of piling up memory and latency. The threads are daemons
and shutdown cancels the jobs still waiting, so Ctrl-C or SIGTERM ends the server within uvicorn's
grace period even while a job runs (a model download, say: its .part file resumes next time).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import TypeVar

from fadercli.errors import FaderError

T = TypeVar("T")
RETRY_AFTER = 2  # seconds a client is asked to wait when the queue is full


class Busy(FaderError):
    code = "busy"


class ShuttingDown(FaderError):
    code = "shutting_down"


class WorkPool:
    def __init__(self, workers: int, waiting: int):
        self.capacity = workers + waiting
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = 0  # queued or running
        self._running: set[Future] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"fader-model-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    async def run(self, fn: Callable[..., T], *args) -> T:
        """fn(*args) on a worker thread; Busy when `waiting` jobs already wait."""
        with self._lock:
            if self._closed:
                raise ShuttingDown("the server is shutting down")
            if self._pending >= self.capacity:
                raise Busy(f"the server is busy ({self._pending} jobs running or waiting): try again shortly")
            self._pending += 1
        future: Future = Future()
        self._jobs.put((future, fn, args))
        return await asyncio.wrap_future(future)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args = job
            try:
                if future.set_running_or_notify_cancel():
                    with self._lock:
                        self._running.add(future)
                    try:
                        result = fn(*args)
                    except BaseException as e:  # handed to the request, which answers it
                        _settle(future, exception=e)
                    else:
                        _settle(future, result=result)
            finally:
                with self._lock:
                    self._pending -= 1
                    self._running.discard(future)

    def shutdown(self) -> None:
        """Cancel the jobs still waiting, answer the requests of running ones at once (a running job
        cannot be stopped: its thread is a daemon, and its result is dropped) and let the threads go.
        Called when a signal arrives, so that requests end before uvicorn's grace period does."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            running = list(self._running)
        for future in running:
            _settle(future, exception=ShuttingDown("the server is shutting down"))
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[0].cancel()
                with self._lock:
                    self._pending -= 1
        for _ in self._threads:
            self._jobs.put(None)


def _settle(future: Future, *, result=None, exception: BaseException | None = None) -> None:
    """Resolve a future unless shutdown did first."""
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass

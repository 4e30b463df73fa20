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
from concurrent.futures import Future
from typing import TypeVar

from fadercli.errors import FaderError

T = TypeVar("T")
RETRY_AFTER = 2  # seconds a client is asked to wait when the queue is full


class Busy(FaderError):
    code = "busy"


class WorkPool:
    def __init__(self, workers: int, waiting: int):
        self.capacity = workers + waiting
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = 0  # queued or running
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
                raise Busy("the server is shutting down")
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
                    try:
                        future.set_result(fn(*args))
                    except BaseException as e:  # handed to the request, which answers it
                        future.set_exception(e)
            finally:
                with self._lock:
                    self._pending -= 1

    def shutdown(self) -> None:
        """Cancel the jobs still waiting and let the threads go; running jobs are not waited for."""
        with self._lock:
            self._closed = True
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

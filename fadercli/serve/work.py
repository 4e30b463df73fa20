"""Model work off the event loop: a few threads, interactive work first, bulk work in stages, bounded
queues, and a shutdown that does not wait.

Two kinds of job, and one place that decides which runs next (WorkPool._next):

- INTERACTIVE: what someone watches while they move something: a slider's preview render, a camera
  frame. Taken first, in the order they came.
- BULK: the rest: an upload's analysis, a full-size render or edit, a sweep, a model's load, a
  photo's estimates for a model loaded since. It runs in stages: at each progress.checkpoint() it
  reaches (between a detection's passes, tiles and candidate faces, between an upload's decoding,
  detection and estimates, between a sweep's models and cells) its worker first runs the
  interactive jobs waiting then, so none waits behind more than one stage of bulk work, and the
  bulk job goes on after them.

With two workers or more, one of them takes interactive jobs only, so one is free for the next
the moment it comes, and the others, which take bulk jobs (and interactive ones first when there
are any), run at a lower CPU priority (progress.lower_priority): on a machine whose cores bulk work
keeps busy, a slider's render still gets a core at once. With one worker, it takes both kinds.

Each kind has its own bound: a request that would queue more than `waiting` jobs of its kind behind
the busy threads is answered 503 with Retry-After at once (code `busy`), instead of piling up memory
and latency, and a queue of uploads never turns a slider away. The threads are daemons and shutdown
cancels the jobs still waiting, so Ctrl-C or SIGTERM ends the server within uvicorn's grace period
even while a job runs (a model download, say: its .part file resumes next time).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import TypeVar

from fadercli.errors import FaderError
from fadercli.progress import checkpoints, lower_priority

T = TypeVar("T")
RETRY_AFTER = 2  # seconds a client is asked to wait when the queue is full
INTERACTIVE, BULK = "interactive", "bulk"


class Busy(FaderError):
    code = "busy"


class ShuttingDown(FaderError):
    code = "shutting_down"


@dataclass
class _Job:
    future: Future
    fn: Callable
    args: tuple
    kind: str


class WorkPool:
    def __init__(self, workers: int, waiting: int):
        self.capacity = workers + waiting  # jobs of one kind queued or running, at most
        self._queues: dict[str, deque[_Job]] = {INTERACTIVE: deque(), BULK: deque()}
        self._pending = {INTERACTIVE: 0, BULK: 0}  # queued or running, by kind
        self._running: set[Future] = set()
        self._ready = threading.Condition()
        self._closed = False
        # Worker 0 of several is the interactive lane; the others take bulk work too, in the background.
        self._threads = [
            threading.Thread(
                target=self._work,
                args=(workers == 1 or i > 0, workers > 1 and i > 0),
                name=f"fader-model-{i}",
                daemon=True,
            )
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pending(self) -> int:
        """Jobs queued or running, of both kinds."""
        with self._ready:
            return sum(self._pending.values())

    async def run(self, fn: Callable[..., T], *args, kind: str = BULK) -> T:
        """fn(*args) on a worker thread, as a job of this kind; Busy when `waiting` jobs of it already wait."""
        future: Future = Future()
        with self._ready:
            if self._closed:
                raise ShuttingDown("the server is shutting down")
            if self._pending[kind] >= self.capacity:
                raise Busy(
                    f"the server is busy ({self._pending[kind]} {kind} jobs running or waiting): try again shortly"
                )
            self._pending[kind] += 1
            self._queues[kind].append(_Job(future, fn, args, kind))
            self._ready.notify_all()  # the lane takes no bulk job: wake every worker
        return await asyncio.wrap_future(future)

    def _next(self, bulk: bool) -> _Job | None:
        """The job a free worker takes (the lock held): the oldest interactive one; else, for a
        worker that takes bulk work, the oldest bulk one."""
        for kind in (INTERACTIVE, BULK) if bulk else (INTERACTIVE,):
            if self._queues[kind]:
                return self._queues[kind].popleft()
        return None

    def _work(self, bulk: bool, background: bool) -> None:
        if background:
            lower_priority()
        while True:
            with self._ready:
                job = self._next(bulk)
                while job is None and not self._closed:
                    self._ready.wait()
                    job = self._next(bulk)
            if job is None:
                return
            self._run(job)

    def _run(self, job: _Job) -> None:
        future = job.future
        try:
            if future.set_running_or_notify_cancel():  # False: its request went away while it waited
                with self._ready:
                    self._running.add(future)
                try:
                    with checkpoints(self._let_in if job.kind == BULK else None):
                        result = job.fn(*job.args)
                except BaseException as e:  # handed to the request, which answers it
                    _settle(future, exception=e)
                else:
                    _settle(future, result=result)
        finally:
            with self._ready:
                self._pending[job.kind] -= 1
                self._running.discard(future)

    def _let_in(self) -> None:
        """A bulk job's checkpoint, on its worker: the interactive jobs waiting now run first."""
        with self._ready:
            jobs = list(self._queues[INTERACTIVE])
            self._queues[INTERACTIVE].clear()
        for job in jobs:
            self._run(job)

    def shutdown(self) -> None:
        """Cancel the jobs still waiting, answer the requests of running ones at once (a running job
        cannot be stopped: its thread is a daemon, and its result is dropped) and let the threads go.
        Called when a signal arrives, so that requests end before uvicorn's grace period does."""
        with self._ready:
            if self._closed:
                return
            self._closed = True
            running = list(self._running)
            waiting = [job for queue in self._queues.values() for job in queue]
            for queue in self._queues.values():
                queue.clear()
            for job in waiting:
                self._pending[job.kind] -= 1
            self._ready.notify_all()
        for future in running:
            _settle(future, exception=ShuttingDown("the server is shutting down"))
        for job in waiting:
            job.future.cancel()


def _settle(future: Future, *, result=None, exception: BaseException | None = None) -> None:
    """Resolve a future unless shutdown did first."""
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass

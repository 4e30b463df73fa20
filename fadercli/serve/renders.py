"""Renders of one photo run one at a time, newest wins.

A slider sends renders faster than they can be made. Per photo, renders are serialised (the
analysis is shared state, and two renders of one photo would only compete for the cores); an
identical request already waiting or running is shared rather than repeated; a request sent with
`supersede` that has not started when a newer superseding one arrives for the same photo is
answered 409 (`superseded`) without being rendered (whether it waits here for the photo's turn or
in the work queue for a thread: the job checks as it starts); and one whose client has gone (a page
that aborted it) is skipped when its turn comes, unless other clients share it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from fadercli.errors import FaderError

T = TypeVar("T")


class Superseded(FaderError):
    code = "superseded"


class ClientGone(Exception):
    """The client went away before its render started: nobody to answer."""


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    latest: int = 0  # the newest superseding request's number
    shared: dict = field(default_factory=dict)  # request key -> future of its result
    sharers: dict = field(default_factory=dict)  # request key -> clients waiting on it besides its own
    users: int = 0


class RenderQueue:
    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}

    async def run(
        self,
        photo_id: str,
        key: str,
        job: Callable[[Callable[[], None]], Awaitable[T]],
        *,
        supersede: bool,
        gone: Callable[[], Awaitable[bool]],
    ) -> T:
        """job(check)'s result, shared with identical requests; `check()` raises Superseded once a
        newer superseding render of the photo has come (the job calls it as it starts, on its thread)."""
        slot = self._slots.setdefault(photo_id, _Slot())
        if key in slot.shared:
            slot.sharers[key] = slot.sharers.get(key, 0) + 1
            try:
                return await asyncio.shield(slot.shared[key])
            finally:
                if key in slot.sharers:
                    slot.sharers[key] -= 1
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # sharers may be none
        slot.shared[key] = future
        if supersede:
            slot.latest += 1
        mine = slot.latest
        slot.users += 1

        def check() -> None:
            if supersede and mine != slot.latest:
                raise Superseded("a newer render of this photo was asked for")

        try:
            async with slot.lock:
                check()
                if not slot.sharers.get(key) and await gone():  # nobody else wants it either
                    raise ClientGone()
                result = await job(check)
            future.set_result(result)
            return result
        except BaseException as e:
            if not future.done():
                future.set_exception(e if isinstance(e, Exception) else ClientGone())
            raise
        finally:
            if slot.shared.get(key) is future:
                del slot.shared[key]
                slot.sharers.pop(key, None)
            slot.users -= 1
            if slot.users == 0:
                self._slots.pop(photo_id, None)

    def forget(self, photo_id: str) -> None:
        """A deleted photo's slot (renders still running keep theirs until they end)."""
        slot = self._slots.get(photo_id)
        if slot is not None and slot.users == 0:
            del self._slots[photo_id]

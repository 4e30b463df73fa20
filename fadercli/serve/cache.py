"""The photos a server holds: each analysed once, kept in an LRU bounded by count and by bytes.

An entry's size is measured again whenever it is used (renders add previews and, for chained
models, memoised results), and the least recently used entries go until both bounds hold; the one
just used always stays. An evicted or deleted id is simply unknown: the API answers 404 with code
`photo_not_found`, and the page uploads its photo again.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from fadercli.engine.analysis import Analysis
from fadercli.errors import FaderError


class PhotoNotFound(FaderError):
    exit_code = 3
    code = "photo_not_found"


@dataclass
class PhotoEntry:
    id: str
    name: str  # the upload's file name, for messages and download names only: never a path
    analysis: Analysis
    align: bool
    created: float = field(default_factory=time.time)
    nbytes: int = 0


class PhotoCache:
    def __init__(self, max_photos: int, max_bytes: int):
        if max_photos < 1:
            raise ValueError("the cache must hold at least one photo")
        self.max_photos = max_photos
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, PhotoEntry] = OrderedDict()
        self._lock = threading.Lock()
        self.evicted = 0

    def add(self, name: str, analysis: Analysis, align: bool) -> PhotoEntry:
        entry = PhotoEntry(secrets.token_urlsafe(12), name, analysis, align)
        with self._lock:
            self._entries[entry.id] = entry
        self.touch(entry)
        return entry

    def get(self, photo_id: str) -> PhotoEntry:
        with self._lock:
            entry = self._entries.get(photo_id)
            if entry is None:
                raise PhotoNotFound(
                    f"no photo {photo_id[:40]!r} here (it may have been evicted from the cache: upload it again)"
                )
            self._entries.move_to_end(photo_id)
            return entry

    def touch(self, entry: PhotoEntry) -> None:
        """Measure an entry again after use, and evict others until both bounds hold."""
        entry.nbytes = entry.analysis.nbytes
        with self._lock:
            if entry.id in self._entries:
                self._entries.move_to_end(entry.id)
            while len(self._entries) > 1 and (
                len(self._entries) > self.max_photos or self.total_bytes > self.max_bytes
            ):
                oldest = next(iter(self._entries))
                if oldest == entry.id:
                    break
                del self._entries[oldest]
                self.evicted += 1

    def remove(self, photo_id: str) -> None:
        with self._lock:
            if self._entries.pop(photo_id, None) is None:
                raise PhotoNotFound(f"no photo {photo_id[:40]!r} here")

    @property
    def total_bytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

"""Atomic file writes: never leave a half-written output, cache entry or checkpoint behind."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from fadercli.errors import OutputError


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds.

    The temp file is created with the process umask (unlike mkstemp's 0600), so the result gets
    the permissions a plain open() would have given it.
    """
    path = Path(path)
    # Same folder, so os.replace stays on one file system.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror}") from None
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise

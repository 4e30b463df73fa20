"""HTTP downloads into a folder: streamed, resumed, retried, checked, then moved into place.

A download writes DEST.part (resumed with a Range request by the next try or the next run) and
renames it to DEST only once its size and sha256 are right. The caller keeps other processes out
(hub.py holds a file lock per cache entry).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from fadercli import __version__, say
from fadercli.errors import DownloadError, UsageError

_CHUNK = 1 << 16
_SPARE_BYTES = 16 << 20  # left free on the disk after a download
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class DownloadSettings:
    """How patient downloads are: FADER_DOWNLOAD_TIMEOUT, _RETRIES and _BACKOFF override these."""

    timeout: float = 30.0  # seconds to connect, and seconds without data before a try is abandoned
    retries: int = 4  # further tries after a 5xx answer, a refused or dropped connection, a stall
    backoff: float = 1.0  # seconds before the first retry, doubling each time

    @classmethod
    def from_env(cls) -> DownloadSettings:
        def number(name: str, default, cast, least):
            text = os.environ.get(name, "")
            try:
                value = cast(text) if text else default
            except ValueError:
                value = least - 1
            if not value >= least:  # also refuses NaN
                raise UsageError(f"{name} must be a number >= {least}, got {text!r}")
            return value

        return cls(
            timeout=number("FADER_DOWNLOAD_TIMEOUT", cls.timeout, float, 0.001),
            retries=number("FADER_DOWNLOAD_RETRIES", cls.retries, int, 0),
            backoff=number("FADER_DOWNLOAD_BACKOFF", cls.backoff, float, 0),
        )


class _Retry(Exception):
    """A failure worth another try (5xx, connection refused or dropped, stall)."""


class _UrlFailed(Exception):
    """This URL will not give the file; a mirror might."""


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Download:
    """One file to download: where to, what it must be, how to report on it."""

    dest: Path
    sha256: str | None
    size: int | None
    label: str
    interactive: bool  # a progress bar and retry messages (a terminal, not --quiet)
    notice: str | None  # said once, when the transfer starts
    settings: DownloadSettings

    @property
    def part(self) -> Path:
        return self.dest.with_name(self.dest.name + ".part")

    def starting(self) -> None:
        if self.notice:
            say(f"{self.label}: {self.notice}", logging.WARNING)  # a licence: shown even with --quiet
            self.notice = None


@contextmanager
def _progress(job: Download, total: int | None, done: int) -> Iterator:
    """A rich progress bar on stderr, if interactive; yields advance(n)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), disable=not job.interactive) as bar:
        task = bar.add_task(job.label, total=total, completed=done)
        yield lambda n: bar.advance(task, n)


def _reason(error: Exception, url: str, timeout: float) -> str:
    """A short, one-line description of a transport failure."""
    import requests
    from urllib3.exceptions import ReadTimeoutError

    host = urlsplit(url).hostname
    if isinstance(error, requests.ConnectTimeout):
        return f"cannot connect to {host} (no answer in {timeout:g} s)"
    if isinstance(error, requests.Timeout) or error.args and isinstance(error.args[0], ReadTimeoutError):
        return f"the server stopped sending data (nothing for {timeout:g} s)"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "the connection dropped during the transfer"
    if isinstance(error, requests.ConnectionError):
        return f"cannot connect to {host}"
    return str(error)


def _total(response) -> int | None:
    """The full file size a 200 or 206 response states, if it does."""
    if response.status_code == 206:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
    else:
        total = response.headers.get("Content-Length", "")
    return int(total) if total.isdigit() else None


def _get(url: str, headers: dict, timeout: float):
    """GET `url`, following at most MAX_REDIRECTS redirects by hand: a redirect may go to another host
    (GitHub sends files from its content servers) but never from https to http, nor to another scheme."""
    import requests

    for _ in range(MAX_REDIRECTS + 1):
        r = requests.get(url, headers=headers, stream=True, timeout=(timeout, timeout), allow_redirects=False)
        if not r.is_redirect:
            return r
        target = urljoin(url, r.headers["Location"])
        r.close()
        scheme = urlsplit(target).scheme
        if scheme not in ("http", "https") or urlsplit(url).scheme == "https" and scheme != "https":
            raise _UrlFailed(f"refused a redirect from {url} to {target} (downloads stay on https)")
        url = target
    raise _UrlFailed(f"more than {MAX_REDIRECTS} redirects")


def _attempt(url: str, job: Download) -> None:
    """One GET appending to job.part (from its current length, with a Range request)."""
    part = job.part
    have = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity", "User-Agent": f"fader/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    timeout = job.settings.timeout
    with _get(url, headers, timeout) as r:
        if r.status_code == 416 and have:  # the partial file is stale or complete: start over
            part.unlink()
            raise _Retry("the server refused to resume the partial file")
        if r.status_code >= 500 or r.status_code == 429:
            raise _Retry(f"HTTP {r.status_code} {r.reason}")
        if r.status_code not in (200, 206):
            raise _UrlFailed(f"HTTP {r.status_code} {r.reason}")
        if r.status_code == 206 and not r.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            raise _UrlFailed("the server answered the resume request with other bytes")
        if r.status_code == 200:
            have = 0  # the server ignored the Range header and sends the whole file
        total = job.size or _total(r)
        if total is not None:
            need, free = total - have, shutil.disk_usage(part.parent).free
            if need > free - _SPARE_BYTES:
                raise DownloadError(
                    f"not enough disk space in {part.parent} for {job.label}: {need / 1e6:.1f} MB needed,"
                    f" {free / 1e6:.1f} MB free"
                )
        job.starting()
        with open(part, "ab" if have else "wb") as out, _progress(job, total, have) as advance:
            for chunk in r.iter_content(_CHUNK):
                out.write(chunk)
                advance(len(chunk))
                if total is not None and out.tell() > total:
                    break
    got = part.stat().st_size
    if total is not None and got > total:
        part.unlink()
        raise _UrlFailed(f"the server sent more than the {total} bytes expected")
    if total is not None and got < total:
        raise _Retry(f"the connection closed after {got} of {total} bytes")


def _download_from(url: str, job: Download) -> str:
    """Download from one URL, with retries; return the file's sha256."""
    import requests

    part = job.part
    tries, fresh_retry = 0, True
    while True:
        resumed = part.exists()
        try:
            _attempt(url, job)
        except (_Retry, requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
            reason = str(e) if isinstance(e, _Retry) else _reason(e, url, job.settings.timeout)
            tries += 1
            if tries > job.settings.retries:
                raise _UrlFailed(f"{reason} ({tries} {'try' if tries == 1 else 'tries'})") from None
            wait = job.settings.backoff * 2 ** (tries - 1)
            if job.interactive:
                say(f"{job.label}: {reason}; retrying in {wait:g} s", logging.WARNING)
            time.sleep(wait)
            continue
        except requests.RequestException as e:  # a malformed URL, too many redirects ...
            raise _UrlFailed(_reason(e, url, job.settings.timeout)) from None
        except OSError as e:  # requests' errors are OSErrors too, hence this order
            raise DownloadError(f"cannot write {part}: {e.strerror or e}") from None
        got = part.stat().st_size
        digest = sha256_file(part)
        if job.size is not None and got != job.size or job.sha256 is not None and digest != job.sha256:
            part.unlink()
            if resumed and fresh_retry:  # the kept bytes may be from an older version of the file
                fresh_retry = False
                continue
            if job.size is not None and got != job.size:
                raise _UrlFailed(f"got {got} bytes, expected {job.size}")
            raise _UrlFailed(f"sha256 mismatch: got {digest}, expected {job.sha256}")
        os.replace(part, job.dest)
        return digest


def download(urls: Sequence[str], job: Download) -> str:
    """Download to job.dest through job.part (resumed if present), checked; return its sha256.

    The caller holds the entry's lock. Tries each mirror in turn.
    """
    failures = []
    for url in urls:
        try:
            return _download_from(url, job)
        except _UrlFailed as e:
            failures.append(f"{url}: {e}")
    raise DownloadError(
        f"cannot download {job.label} from {'; '.join(failures)}. Offline? Fetch the file elsewhere and"
        f" save it as {job.dest} (FADER_OFFLINE=1 keeps fader off the network)"
    )

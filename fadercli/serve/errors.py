"""Failures as JSON: {"error": the one line the CLI would print, "code": a stable name} and a status.

400 a malformed request (bad JSON, a missing field, an empty upload), 401 no or a wrong token,
403 a state-changing request from another site (code `cross_site`), 404 an unknown photo, model
or path, 409 a render superseded by a newer one, 413 an upload over the limit or an image over
the pixel limit, 415 not an image (or a format fader does not read), 422 a well-formed request that
cannot be done (unknown attribute, a value that is not finite, no face, a face index out of range,
a damaged image), 502 a model download that failed, 503 with Retry-After when the queue of model
work is full (code `busy`). Anything else is a bug: 500, code `internal`, the traceback on the
server's stderr only.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from fadercli.errors import (
    DeviceError,
    DownloadError,
    FaderError,
    InputError,
    ModelError,
    NoFaceError,
    UsageError,
)
from fadercli.serve.work import RETRY_AFTER

STATUS_BY_CODE = {
    "bad_request": 400,
    "bad_json": 400,
    "empty_upload": 400,
    "missing_file": 400,
    "bad_host": 400,
    "unauthorized": 401,
    "cross_site": 403,
    "not_found": 404,
    "photo_not_found": 404,
    "no_such_model": 404,
    "no_card": 404,
    "method_not_allowed": 405,
    "superseded": 409,
    "too_large": 413,
    "too_many_pixels": 413,
    "not_an_image": 415,
    "busy": 503,
    "shutting_down": 503,
}
STATUS_BY_CLASS = (
    (UsageError, 422),
    (NoFaceError, 422),
    (InputError, 422),
    (ModelError, 422),
    (DownloadError, 502),
    (DeviceError, 500),
)


class HTTPFailure(FaderError):
    """A failure of the request itself (not of the photo or the values in it)."""

    code = "bad_request"


def status_of(error: FaderError) -> int:
    if error.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[error.code]
    for cls, status in STATUS_BY_CLASS:
        if isinstance(error, cls):
            return status
    return 400


def one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line[:500]


def failure(message: str, code: str, status: int | None = None, headers: dict | None = None) -> JSONResponse:
    status = status or STATUS_BY_CODE.get(code, 400)
    return JSONResponse({"error": one_line(message), "code": code}, status_code=status, headers=headers)


def from_error(error: FaderError) -> JSONResponse:
    status = status_of(error)
    headers = {"Retry-After": str(RETRY_AFTER)} if status == 503 else None
    return failure(str(error), error.code, status, headers)

"""The ASGI app: the page at `/`, the JSON API under `/api/`, OpenAPI at `/docs`.

Every route is a thin shell over the Python API: an upload is `Fader.analyse` + `estimates()`, a
render `Analysis.render`, a sweep `Fader.sweep` of the analysis, `POST /api/edit` `Fader.edit`;
images are encoded as `fader edit` writes them (images.encode_image). Model work runs on a few
threads with a bounded queue (work.py), off the event loop.

What the server trusts (README, "Security"): requests that change anything (every method but GET,
HEAD and OPTIONS) must come from its own page, a client that is not a browser, or the --cors
origin: a browser's Origin / Sec-Fetch-Site headers from any other site are refused (403), so a
page the user visits elsewhere cannot upload, load models or fill memory. With a token, every API
call needs it too (compared as bytes). Uploads are bounded in bytes, pixels and faces.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import sys
import time
import traceback
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Literal, Optional, Union

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from fadercli import __version__
from fadercli.errors import FaderError, UsageError
from fadercli.limits import SERVE, Limits
from fadercli.serve.cache import PhotoCache, PhotoEntry
from fadercli.serve.errors import HTTPFailure, failure, from_error
from fadercli.serve.models import ModelPool
from fadercli.serve.renders import ClientGone, RenderQueue
from fadercli.serve.work import WorkPool

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
               "TIFF": "image/tiff", "BMP": "image/bmp"}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
MULTIPART_SLACK = 64 * 1024  # the multipart framing and form fields around an upload's file


@dataclass
class Settings:
    token: str | None = None  # required on every API call when set
    max_upload_bytes: int = 25 * 1024 * 1024
    cache_photos: int = 32
    cache_bytes: int = 1024 * 1024 * 1024
    cors: str | None = None  # an origin allowed to call the API from another page
    allowed_hosts: tuple[str, ...] | None = None  # Host headers accepted (None: any); against DNS rebinding
    workers: int = 1  # threads running model work
    queue: int = 8  # model jobs that may wait for a thread; more are answered 503
    limits: Limits = SERVE  # pixels and faces per photo
    cookie: str = "fader_token"  # the token's cookie; the server names it after its port
    device: str = "cpu"  # how /api/health describes the device


# ---------------------------------------------------------------- request bodies (documented at /docs)


class RenderRequest(BaseModel):
    faces: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="{face index: {attribute: value}}; faces not named stay as they are,"
        " attributes not named keep the face's estimate", examples=[{"0": {"Smiling": 0.8}}],
    )
    format: Literal["jpeg", "jpg", "png", "webp"] = "png"
    max_size: Optional[int] = Field(None, ge=16, le=65536, description="longer side of a preview; null: full resolution")
    quality: int = Field(90, ge=1, le=100, description="JPEG / WebP quality")
    supersede: bool = Field(False, description="drop this render if a newer superseding one of the photo comes first (409)")


class SweepRequest(BaseModel):
    attribute: str
    steps: int = Field(10, ge=2, le=60)
    range: Optional[tuple[float, float]] = Field(None, description="[lo, hi]; default: the attribute's recommended range")
    face: Union[int, Literal["largest"]] = "largest"
    format: Literal["gif", "png", "jpeg", "webp"] = "gif"
    max_size: int = Field(256, ge=16, le=1024, description="longer side of each cell")
    fps: float = Field(8.0, gt=0, le=50)
    bounce: bool = False
    crop: bool = Field(False, description="the aligned faces instead of the whole photo")


# ---------------------------------------------------------------- the app


def create_app(pool: ModelPool, settings: Settings) -> FastAPI:
    work = WorkPool(settings.workers, settings.queue)
    cache = PhotoCache(settings.cache_photos, settings.cache_bytes)
    queue = RenderQueue()
    page, page_csp = _page()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        work.shutdown()  # waiting jobs cancelled; a running one is not waited for

    app = FastAPI(
        title="fader", version=__version__, lifespan=lifespan,
        description="Edit attributes of faces with Fader Networks. Errors are JSON {\"error\", \"code\"}.",
    )
    app.state.cache = cache
    app.state.pool = pool
    app.state.work = work

    async def in_pool(fn, *args):
        return await work.run(fn, *args)

    # ------------------------------------------------------------ errors

    @app.exception_handler(FaderError)
    async def _fader_error(request: Request, error: FaderError):
        return from_error(error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError):
        return _validation_failure(error)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException):
        cause = error.__cause__
        if isinstance(cause, FaderError):  # raised while FastAPI read the body (the size limit)
            return from_error(cause)
        if error.status_code == 404:
            return failure(f"no such path: {request.method} {request.url.path}", "not_found", 404)
        if error.status_code == 405:
            return failure(f"{request.method} is not allowed on {request.url.path}", "method_not_allowed", 405)
        if error.status_code == 400:
            return failure("the request body cannot be read (multipart/form-data with a 'file' field, or JSON)",
                           "bad_request", 400)
        return failure(str(error.detail), "http_error", error.status_code)

    @app.exception_handler(Exception)
    async def _bug(request: Request, error: Exception):
        if isinstance(error, MemoryError):
            return failure("not enough memory for this request", "too_large", 413)
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
        return failure(f"internal error ({type(error).__name__}): please report it", "internal", 500)

    # ------------------------------------------------------------ the page

    @app.get("/", include_in_schema=False)
    async def index(request: Request):
        token = request.query_params.get("token")
        if token is not None and settings.token is not None and same_token(token, settings.token):
            # The token goes into a cookie and out of the address bar (and the history); the cookie is
            # named after the port, since cookies do not tell one local port from another.
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(settings.cookie, token, httponly=True, samesite="strict")
            return response
        return HTMLResponse(page, headers={"Content-Security-Policy": page_csp, "Cache-Control": "no-cache"})

    # ------------------------------------------------------------ models

    @app.get("/api/health")
    async def health():
        return {"status": "ok", "version": __version__, "device": settings.device,
                "models": sum(o.model is not None for o in pool.offers.values()), "photos": len(cache)}

    @app.get("/api/models")
    async def models():
        """The models offered, their attributes and slider ranges (without --model: the registry's,
        each loaded on first use)."""
        return {"models": pool.describe(), "attributes": pool.attributes(), "registry": pool.registry_mode}

    @app.post("/api/models/{name}/load")
    async def load_model(name: str):
        """Load one offered model (downloading it on first use)."""
        await in_pool(pool.load, name)
        return {"models": pool.describe(), "attributes": pool.attributes(), "registry": pool.registry_mode}

    # ------------------------------------------------------------ photos

    @app.post("/api/photos", status_code=201)
    async def upload(file: Optional[UploadFile] = File(None), align: bool = Form(True)):
        """Upload a photo (multipart field `file`): its faces are found, and each model encodes them and
        estimates their values, once. 201 with the photo's id, size, faces and attributes."""
        data, name = await _read_upload(file)
        fader = pool.require_fader()

        def analyse():
            from fadercli.images import decode_image

            analysis = fader.analyse(decode_image(data, name, limits=fader.limits), name=name, align=align)
            return analysis, analysis.estimates()

        analysis, faces = await in_pool(analyse)
        entry = cache.add(name, analysis, align)
        return JSONResponse(_record(entry, faces, pool), status_code=201, headers={"Location": f"/api/photos/{entry.id}"})

    @app.get("/api/photos/{photo_id}")
    async def photo(photo_id: str):
        """A photo's faces and attributes (estimates for models loaded since the upload are made now)."""
        entry = cache.get(photo_id)
        faces = await in_pool(entry.analysis.estimates)
        cache.touch(entry)
        return _record(entry, faces, pool)

    @app.delete("/api/photos/{photo_id}", status_code=204)
    async def delete(photo_id: str):
        cache.remove(photo_id)
        queue.forget(photo_id)
        return Response(status_code=204)

    @app.post("/api/photos/{photo_id}/render")
    async def render(photo_id: str, body: RenderRequest, request: Request):
        """The photo with the faces named set to the values given: an image (`max_size`: a preview).
        Server time in the `Server-Timing` and `X-Render-Seconds` headers; the faces' values in `X-Fader-Faces`."""
        entry = cache.get(photo_id)
        faces = _face_values(body.faces)
        fmt = "JPEG" if body.format in ("jpeg", "jpg") else body.format.upper()
        key = json.dumps([sorted((k, sorted(v.items())) for k, v in faces.items()), fmt, body.max_size, body.quality])

        def job():
            from fadercli.images import encode_image

            started = time.perf_counter()
            result = entry.analysis.render(faces=faces, max_size=body.max_size)
            rendered = time.perf_counter()
            data = encode_image(result.image, fmt, quality=body.quality)
            cache.touch(entry)
            return data, result, rendered - started, time.perf_counter() - rendered

        try:
            data, result, seconds, encoding = await queue.run(
                photo_id, key, lambda: in_pool(job), supersede=body.supersede, gone=request.is_disconnected
            )
        except ClientGone:
            return Response(status_code=499)
        return Response(data, media_type=MEDIA_TYPES[fmt], headers=_timing(seconds, encoding, result.faces))

    @app.post("/api/photos/{photo_id}/sweep")
    async def sweep(photo_id: str, body: SweepRequest):
        """One attribute slid through `steps` values: an animated GIF (or a PNG / JPEG / WebP grid)."""
        entry = cache.get(photo_id)
        fader = pool.require_fader()
        fmt = {"jpeg": "JPEG"}.get(body.format, body.format.upper())

        def job():
            started = time.perf_counter()
            result = fader.sweep(entry.analysis, body.attribute, steps=body.steps, value_range=body.range,
                                 face=body.face, crop=body.crop, max_size=body.max_size)
            data = result.encode(fmt, fps=body.fps, bounce=body.bounce)
            cache.touch(entry)
            return data, time.perf_counter() - started

        data, seconds = await in_pool(job)
        headers = {"X-Render-Seconds": f"{seconds:.4f}", "Cache-Control": "no-store"}
        return Response(data, media_type=MEDIA_TYPES[fmt], headers=headers)

    @app.post("/api/edit")
    async def edit(
        file: Optional[UploadFile] = File(None),
        set: list[str] = Form([], description="NAME=VALUE (repeatable)"),
        shift: list[str] = Form([], description="NAME=DELTA (repeatable)"),
        face: str = Form("all"),
        align: bool = Form(True),
        format: Optional[str] = Form(None, description="png, jpeg, webp, ...; default: the upload's own"),
    ):
        """Stateless: the photo edited as `fader edit` edits it (same pixels, same encoding)."""
        from fadercli.cli.edit import _assignments
        from fadercli.faces import parse_face_choice
        from fadercli.images import decode_image, encode_image, output_format

        data, name = await _read_upload(file)
        values, shifts = _assignments(set, "set"), _assignments(shift, "shift")
        if not values and not shifts:
            raise UsageError("nothing to edit: give set=NAME=VALUE or shift=NAME=DELTA fields")
        choice = parse_face_choice(face)
        fmt = output_format(format)[0] if format else None
        fader = pool.require_fader()
        fader.plan(values, shifts)

        def job():
            started = time.perf_counter()
            photo = decode_image(data, name, limits=fader.limits)
            analysis = fader.analyse(photo, face=choice, align=align, name=name)
            result = analysis.render(values, shifts)
            rendered = time.perf_counter()
            written = fmt or {"MPO": "JPEG"}.get(photo.format or "", photo.format) or "PNG"
            return encode_image(result.image, written), written, result, rendered - started, time.perf_counter() - rendered

        data, written, result, seconds, encoding = await in_pool(job)
        media = MEDIA_TYPES.get(written, "application/octet-stream")
        return Response(data, media_type=media, headers=_timing(seconds, encoding, result.faces))

    # ------------------------------------------------------------ upload size, token, host

    app.add_middleware(_Guard, settings=settings)
    if settings.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=[settings.cors], allow_methods=["*"],
                           allow_headers=["*"], allow_credentials=True,
                           expose_headers=["Server-Timing", "X-Render-Seconds", "X-Fader-Faces"])
    return app


# ---------------------------------------------------------------- helpers


async def _read_upload(file: UploadFile | None) -> tuple[bytes, str]:
    if file is None or not hasattr(file, "read"):
        raise HTTPFailure("no photo: send it as the multipart/form-data field 'file'", code="missing_file")
    name = _display_name(file.filename)
    data = await file.read()
    if not data:
        raise HTTPFailure(f"{name}: the upload is empty", code="empty_upload")
    return data, name


def _display_name(filename: str | None) -> str:
    """The upload's file name for messages and downloads: its last part, printable, short. Never a path."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()[:80]
    return name or "the upload"


def _face_values(faces: dict[str, dict[str, float]]) -> dict[int, dict[str, float]]:
    out = {}
    for key, values in faces.items():
        if not re.fullmatch(r"\s*\d{1,6}\s*", key):
            raise UsageError(f"face {key!r}: faces are named by their index (0 = the largest)", code="bad_face")
        out[int(key)] = values
    return out


def _record(entry: PhotoEntry, faces, pool: ModelPool) -> dict:
    photo = entry.analysis.photo
    return {
        "id": entry.id,
        "name": entry.name,
        "width": photo.width,
        "height": photo.height,
        "align": entry.align,
        # Estimates unrounded: a render at these values gives the photo back bit for bit.
        "faces": [{"face": f.index, "box": None if f.box is None else [round(v, 2) for v in f.box],
                   "estimated": f.estimated} for f in faces],
        "attributes": pool.attributes(),
    }


def _timing(seconds: float, encoding: float, faces) -> dict:
    described = [{"face": f.index, "estimated": {k: round(v, 4) for k, v in f.estimated.items()},
                  "values": {k: round(v, 4) for k, v in (f.values or {}).items()}} for f in faces]
    return {
        "Server-Timing": f"render;dur={seconds * 1000:.1f}, encode;dur={encoding * 1000:.1f}",
        "X-Render-Seconds": f"{seconds + encoding:.4f}",
        "X-Fader-Faces": json.dumps(described, separators=(",", ":")),
        "Cache-Control": "no-store",
    }


def _validation_failure(error: RequestValidationError) -> JSONResponse:
    """One line from pydantic's list: where and what, for the first problem."""
    problems = error.errors()
    first = problems[0] if problems else {}
    if first.get("type") == "json_invalid":
        return failure("the request body is not valid JSON", "bad_json", 400)
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "form"))
    message = first.get("msg", "invalid request")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return failure(f"{where}: {message}{more}" if where else f"{message}{more}", "invalid_request", 422)


def _page() -> tuple[str, str]:
    """The page, and a Content-Security-Policy that allows exactly its own inline script."""
    html = resources.files("fadercli.serve").joinpath("static/index.html").read_text(encoding="utf-8")
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    )
    csp = (f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src 'self' blob: data:;"
           " connect-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return html, csp


def same_token(given: str | bytes, token: str) -> bool:
    """A constant-time comparison of a token as sent (any bytes: headers arrive as latin-1, query
    strings as UTF-8) with the server's, as bytes (compare_digest refuses non-ASCII str)."""
    if isinstance(given, str):
        given = given.encode("utf-8", "replace")
    return hmac.compare_digest(given, token.encode("utf-8"))


class _Guard:
    """ASGI middleware: the Host header (against DNS rebinding), requests from other sites, the
    token, and the body size limit."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        allowed = self.settings.allowed_hosts
        if allowed is not None:
            host = headers.get("host", "")
            host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if host.lower() not in allowed:
                return await failure(f"this server answers only to {', '.join(allowed)}, not {host!r}",
                                     "bad_host", 400)(scope, receive, send)
        if scope["method"] not in SAFE_METHODS and not self._same_site(scope, headers):
            return await failure(
                "refused a request from another site: only fader's own page (or the --cors origin) may change anything",
                "cross_site", 403,
            )(scope, receive, send)
        path = scope["path"]
        if self.settings.token is not None and path != "/" and not self._authorised(headers):
            return await failure(
                "a token is needed: open the link fader serve printed (…/?token=…), or send Authorization: Bearer TOKEN",
                "unauthorized", 401, headers={"WWW-Authenticate": "Bearer"},
            )(scope, receive, send)
        limit = self.settings.max_upload_bytes + MULTIPART_SLACK
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            return await _too_large(int(length), self.settings)(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(_too_large_message(received, self.settings))
            return message

        await self.app(scope, counted, send)

    def _same_site(self, scope, headers: dict[str, str]) -> bool:
        """Whether a browser says the request comes from this server's own page (or the --cors origin).
        Browsers send Origin with every POST, PUT and DELETE, and Sec-Fetch-Site with most requests;
        a client that sends neither is not a browser (curl, a script), which no web page can drive."""
        origin = headers.get("origin")
        if origin is not None and origin == self.settings.cors:
            return True
        if origin is not None and origin.lower() != f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower():
            return False  # another site, another port, or "null" (a sandboxed frame, a file)
        return headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")

    def _authorised(self, headers: dict[str, str]) -> bool:
        token = self.settings.token
        given = headers.get("authorization", "")
        if given.lower().startswith("bearer ") and same_token(given[7:].strip().encode("latin-1"), token):
            return True
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == self.settings.cookie and same_token(value.encode("latin-1"), token):
                return True
        return False


class _TooLarge(FaderError):
    code = "too_large"


def _too_large_message(size: int, settings: Settings) -> str:
    limit = settings.max_upload_bytes / 2**20
    return (f"the upload is {size / 2**20:.1f} MB or more, over the {limit:.3g} MB limit"
            " (fader serve --max-upload-mb)")


def _too_large(size: int, settings: Settings) -> JSONResponse:
    return failure(_too_large_message(size, settings), "too_large", 413, headers={"Connection": "close"})


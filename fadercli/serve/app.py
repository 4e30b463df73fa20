"""The ASGI app: the page at `/`, the JSON API under `/api/`, OpenAPI at `/docs`.

Every route is a thin shell over the Python API: an upload is `Fader.analyse` + `estimates()`, a
render `Analysis.render`, a sweep `Fader.sweep` of the analysis, `POST /api/edit` `Fader.edit`;
images are encoded as `fader edit` writes them (media.writing.encode_image). Model work runs on a few
threads with bounded queues (work.py), off the event loop: preview renders as interactive work,
ahead of the bulk work of uploads, full-size renders and edits, sweeps and model loads.

What the server trusts (README, "Security"): requests that change anything (every method but GET,
HEAD and OPTIONS) must come from its own page, a client that is not a browser, or the --cors
origin: a browser's Origin / Sec-Fetch-Site headers from any other site are refused (403), so a
page the user visits elsewhere cannot upload, load models or fill memory. With a token, every API
call needs it too (compared as bytes). Uploads are bounded in bytes, pixels and faces. The
camera's WebSocket (`/api/camera`, camera.py) passes the same checks at its handshake.
"""

from __future__ import annotations

import json
import re
import sys
import time
import traceback
from contextlib import asynccontextmanager
from typing import Literal, Optional, Union

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from fadercli import __version__
from fadercli.errors import FaderError, InputError, UsageError
from fadercli.progress import checkpoint
from fadercli.serve.cache import PhotoCache, PhotoEntry
from fadercli.serve.camera import add_camera
from fadercli.serve.errors import HTTPFailure, failure, from_error
from fadercli.serve.guard import Guard, same_token
from fadercli.serve.models import ModelPool
from fadercli.serve.page import curves_png, page_and_policy
from fadercli.serve.renders import ClientGone, RenderQueue
from fadercli.serve.settings import LOOPBACK_NAMES, Settings
from fadercli.serve.work import BULK, INTERACTIVE, WorkPool
from fadercli.train.card import CARD_FILE

MAX_CARD_BYTES = 256 * 1024  # a card is a few kB; a huge README.md is cut, not read whole

__all__ = ["LOOPBACK_NAMES", "Settings", "create_app"]

MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
    "AVIF": "image/avif",
    "HEIF": "image/heic",
}


# ---------------------------------------------------------------- request bodies (documented at /docs)


class RenderRequest(BaseModel):
    faces: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="{face index: {attribute: value}}; faces not named stay as they are,"
        " attributes not named keep the face's estimate",
        examples=[{"0": {"Smiling": 0.8}}],
    )
    format: Literal["jpeg", "jpg", "png", "webp"] = "png"
    max_size: Optional[int] = Field(
        None, ge=16, le=65536, description="longer side of a preview; null: full resolution"
    )
    quality: int = Field(90, ge=1, le=100, description="JPEG / WebP quality")
    supersede: bool = Field(
        False, description="drop this render if a newer superseding one of the photo comes first (409)"
    )


class SweepRequest(BaseModel):
    attribute: str
    steps: int = Field(10, ge=2, le=60)
    range: Optional[tuple[float, float]] = Field(
        None, description="[lo, hi]; default: the attribute's recommended range"
    )
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

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        work.shutdown()  # waiting jobs cancelled; a running one is not waited for

    app = FastAPI(
        title="fader",
        version=__version__,
        lifespan=lifespan,
        description='Edit attributes of faces with Fader Networks. Errors are JSON {"error", "code"}.',
    )
    app.state.cache = cache
    app.state.pool = pool
    app.state.work = work
    app.state.renders = queue

    async def in_pool(fn, *args, kind: str = BULK):
        return await work.run(fn, *args, kind=kind)

    _error_handlers(app)
    _page_and_models(app, pool, settings, cache, in_pool)
    _photos(app, pool, cache, queue, in_pool)
    _sweeps(app, pool, cache, in_pool)
    _edit(app, pool, in_pool)
    add_camera(app, pool, settings, work)
    app.add_middleware(Guard, settings=settings)
    if settings.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=[settings.cors],
            allow_methods=["*"],
            allow_headers=["*"],
            allow_credentials=True,
            expose_headers=["Server-Timing", "X-Render-Seconds", "X-Fader-Faces"],
        )
    return app


def _error_handlers(app: FastAPI) -> None:
    """Every failure answered as JSON {"error": one line, "code"} (serve/errors.py)."""

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
            return failure(
                "the request body cannot be read (multipart/form-data with a 'file' field, or JSON)", "bad_request", 400
            )
        return failure(str(error.detail), "http_error", error.status_code)

    @app.exception_handler(Exception)
    async def _bug(request: Request, error: Exception):
        if isinstance(error, MemoryError):
            return failure("not enough memory for this request", "too_large", 413)
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
        return failure(f"internal error ({type(error).__name__}): please report it", "internal", 500)


def _page_and_models(app: FastAPI, pool: ModelPool, settings: Settings, cache: PhotoCache, in_pool) -> None:
    """The page at `/` (a `?token=` link logs in with a cookie), health, and the models offered."""
    page, page_csp = page_and_policy()

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

    @app.get("/api/health")
    async def health():
        return {
            "status": "ok",
            "version": __version__,
            "device": settings.device,
            "precision": settings.precision,
            "models": sum(o.model is not None for o in pool.offers.values()),
            "photos": len(cache),
        }

    @app.get("/api/models")
    async def models():
        """The models offered, their attributes and slider ranges (without --model: the registry's,
        each loaded on first use)."""
        return {"models": pool.describe(), "attributes": pool.attributes(), "registry": pool.registry_mode}

    @app.get("/api/models/{name:path}/card")
    async def card(name: str):
        """A loaded model's card (README.md beside its weights), as Markdown text."""
        path = pool.folder(name) / CARD_FILE
        if not path.is_file():
            raise InputError(f"{name}: no model card beside its weights", code="no_card")
        with open(path, "rb") as f:
            text = f.read(MAX_CARD_BYTES).decode("utf-8", errors="replace")
        return Response(text, media_type="text/markdown; charset=utf-8")

    @app.get("/api/models/{name:path}/curves.png")
    async def curves(name: str):
        """A loaded training run's curves, drawn from its metrics.jsonl (the `plot` extra)."""
        folder = pool.folder(name)
        return Response(
            await in_pool(curves_png, folder), media_type="image/png", headers={"Cache-Control": "no-cache"}
        )

    @app.post("/api/models/{name}/load")
    async def load_model(name: str):
        """Load one offered model (downloading it on first use)."""
        await in_pool(pool.load, name)
        return {"models": pool.describe(), "attributes": pool.attributes(), "registry": pool.registry_mode}


def _photos(app: FastAPI, pool: ModelPool, cache: PhotoCache, queue: RenderQueue, in_pool) -> None:
    """Photos uploaded and analysed once, rendered with any values, swept, deleted."""

    @app.post("/api/photos", status_code=201)
    async def upload(file: Optional[UploadFile] = File(None), align: bool = Form(True)):
        """Upload a photo (multipart field `file`): its faces are found, and each model encodes them and
        estimates their values, once. 201 with the photo's id, size, faces and attributes."""
        data, name = await _read_upload(file)
        fader = pool.require_fader()

        def analyse():
            from fadercli.media.images import decode_image

            photo = decode_image(data, name, limits=fader.limits)
            checkpoint()  # stages: decoding, the detection's own (passes, tiles, faces), the estimates
            analysis = fader.analyse(photo, name=name, align=align)
            checkpoint()
            return analysis, analysis.estimates()

        analysis, faces = await in_pool(analyse)
        entry = cache.add(name, analysis, align)
        return JSONResponse(
            _record(entry, faces, pool), status_code=201, headers={"Location": f"/api/photos/{entry.id}"}
        )

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

        def job(check):
            from fadercli.media.writing import encode_image

            check()  # superseded while it waited for a thread: dropped before it starts
            started = time.perf_counter()
            result = entry.analysis.render(faces=faces, max_size=body.max_size)
            rendered = time.perf_counter()
            data = encode_image(result.image, fmt, quality=body.quality)
            cache.touch(entry)
            return data, result, rendered - started, time.perf_counter() - rendered

        # A preview is what a slider waits for: interactive. The full photo (a download) is bulk work.
        kind = BULK if body.max_size is None else INTERACTIVE
        try:
            data, result, seconds, encoding = await queue.run(
                photo_id,
                key,
                lambda check: in_pool(job, check, kind=kind),
                supersede=body.supersede,
                gone=request.is_disconnected,
            )
        except ClientGone:
            return Response(status_code=499)
        return Response(data, media_type=MEDIA_TYPES[fmt], headers=_timing(seconds, encoding, result.faces))


def _sweeps(app: FastAPI, pool: ModelPool, cache: PhotoCache, in_pool) -> None:
    """A photo's faces with one attribute slid through its range: a GIF or a grid."""

    @app.post("/api/photos/{photo_id}/sweep")
    async def sweep(photo_id: str, body: SweepRequest):
        """One attribute slid through `steps` values: an animated GIF (or a PNG / JPEG / WebP grid)."""
        entry = cache.get(photo_id)
        fader = pool.require_fader()
        fmt = {"jpeg": "JPEG"}.get(body.format, body.format.upper())

        def job():
            started = time.perf_counter()
            result = fader.sweep(
                entry.analysis,
                body.attribute,
                steps=body.steps,
                value_range=body.range,
                face=body.face,
                crop=body.crop,
                max_size=body.max_size,
            )
            checkpoint()
            data = result.encode(fmt, fps=body.fps, bounce=body.bounce)
            cache.touch(entry)
            return data, time.perf_counter() - started

        data, seconds = await in_pool(job)
        headers = {"X-Render-Seconds": f"{seconds:.4f}", "Cache-Control": "no-store"}
        return Response(data, media_type=MEDIA_TYPES[fmt], headers=headers)


def _edit(app: FastAPI, pool: ModelPool, in_pool) -> None:
    """`POST /api/edit`: stateless, the photo edited as `fader edit` edits it."""

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
        from fadercli.attributes import edit_values
        from fadercli.faces import parse_face_choice
        from fadercli.media.formats import output_format
        from fadercli.media.images import decode_image
        from fadercli.media.writing import encode_image

        data, name = await _read_upload(file)
        values, shifts = edit_values(set, shift, ("set", "shift"))
        choice = parse_face_choice(face)
        fmt = output_format(format)[0] if format else None
        fader = pool.require_fader()
        fader.plan(values, shifts)

        def job():
            started = time.perf_counter()
            photo = decode_image(data, name, limits=fader.limits)
            checkpoint()
            result = fader.edit(photo, values, shifts, face=choice, align=align, name=name)
            rendered = time.perf_counter()
            checkpoint()
            written = fmt or {"MPO": "JPEG"}.get(photo.format or "", photo.format) or "PNG"
            return (
                encode_image(result.image, written),
                written,
                result,
                rendered - started,
                time.perf_counter() - rendered,
            )

        data, written, result, seconds, encoding = await in_pool(job)
        media = MEDIA_TYPES.get(written, "application/octet-stream")
        return Response(data, media_type=media, headers=_timing(seconds, encoding, result.faces))


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
        "faces": [
            {"face": f.index, "box": None if f.box is None else [round(v, 2) for v in f.box], "estimated": f.estimated}
            for f in faces
        ],
        "attributes": pool.attributes(),
    }


def _timing(seconds: float, encoding: float, faces) -> dict:
    described = [
        {
            "face": f.index,
            "estimated": {k: round(v, 4) for k, v in f.estimated.items()},
            "values": {k: round(v, 4) for k, v in (f.values or {}).items()},
        }
        for f in faces
    ]
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

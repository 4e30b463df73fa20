"""The camera: a WebSocket at `/api/camera` over which the page sends its camera's frames and gets
them back edited, each by the client's own video.live.LiveEditor (Fader.live): faces followed,
values smoothed, the sliders' values applied.

Freshness before completeness: per client one frame is edited at a time and at most one waits; a
newer frame replaces a waiting one, which is answered `dropped` and never edited. Frames are
bounded in bytes (MAX_FRAME_BYTES: uvicorn refuses bigger messages), in pixels (MAX_FRAME_PIXELS,
checked from the JPEG's header by the image gate) and in rate (MAX_FPS: frames sooner than that
are answered `dropped`); clients at once by Settings.cameras (more are refused, 503 `busy`). The
Guard checks the socket's Host, Origin and token as it does every request's. A client that
leaves takes its work with it: the frame waiting is dropped, a job not started is cancelled, and
its tracks are let go. Frames live in memory only, for the time their edit takes.

Messages: the server's first is text, JSON: {"side", "fps", "max_bytes", "max_pixels",
"attributes"}: the longer side to scale frames to (what the models need: three times the largest
model's crop, from 320 to 960), the rate and size bounds and the attributes. Later text messages, {"side": n},
ask for frames of another size: more pixels when the largest face found is smaller than the models'
crop (up to ASK_MAX_SIDE, within the frame bounds), fewer again when they have grown (never
fewer than the first side); a client sends frames no larger than its camera's. Then each frame, binary: a 4-byte
big-endian length, a JSON header {"seq": n, "values": {name: value}} and a JPEG; each is answered,
binary, in the same framing: a header {"seq", "faces": [{"box", "estimated", "values", "weight"}],
"server_ms"} and the edited JPEG, or a header alone, {"seq", "dropped": "replaced" | "rate"} or
{"seq", "error", "code"}.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
import sys
import time
import traceback
from dataclasses import dataclass

import anyio
from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect

from fadercli.errors import FaderError, UsageError
from fadercli.limits import Limits
from fadercli.serve.errors import failure
from fadercli.serve.guard import refuse
from fadercli.serve.models import ModelPool
from fadercli.serve.settings import Settings
from fadercli.serve.work import INTERACTIVE, WorkPool

MAX_FRAME_BYTES = 1024 * 1024  # a 960 px JPEG is 50-200 kB
MAX_FRAME_PIXELS = 1280 * 960
MAX_HEADER_BYTES = 4096
MAX_FPS = 30.0
RATE_SLACK = 0.8  # frames closer than this x 1 / MAX_FPS are dropped (the browser's timers jitter)
MIN_SIDE, MAX_SIDE = 320, 960
ASK_MAX_SIDE = 1280  # the most a client is asked for: MAX_FRAME_PIXELS at 4:3
ASK_CHANGE = 1.25  # the side asked for changes by this ratio at least (a face's size wanders a little)...
ASK_EVERY = 1.0  # ... and at most once in this many seconds
QUALITY = 85  # the JPEGs sent back
STREAM_FPS = 15.0  # the rate a face tracker assumes (how many missed looks end a track)
_LENGTH = struct.Struct(">I")


@dataclass
class Frame:
    seq: int
    values: dict[str, float]
    jpeg: bytes
    at: float  # when it arrived (time.monotonic): the smoothing's clock


class Waiting:
    """At most one frame waiting for its edit: a newer one takes its place."""

    def __init__(self) -> None:
        self.frame: Frame | None = None
        self._ready = asyncio.Event()

    def put(self, frame: Frame) -> Frame | None:
        """Wait `frame`; the frame it replaces, if one was waiting."""
        replaced, self.frame = self.frame, frame
        self._ready.set()
        return replaced

    async def take(self) -> Frame:
        await self._ready.wait()
        self._ready.clear()
        frame, self.frame = self.frame, None
        return frame


def pack(header: dict, body: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return _LENGTH.pack(len(head)) + head + body


def unpack(message: bytes) -> tuple[dict, bytes]:
    """A frame message's header and JPEG; UsageError (code bad_frame) for anything else."""
    if len(message) < _LENGTH.size:
        raise UsageError("a camera frame is a 4-byte length, a JSON header and a JPEG", code="bad_frame")
    (length,) = _LENGTH.unpack_from(message)
    if length > MAX_HEADER_BYTES or _LENGTH.size + length > len(message):
        raise UsageError(f"a camera frame's header is at most {MAX_HEADER_BYTES} bytes", code="bad_frame")
    try:
        header = json.loads(message[_LENGTH.size : _LENGTH.size + length])
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict):
        raise UsageError("a camera frame's header is not a JSON object", code="bad_frame")
    return header, message[_LENGTH.size + length :]


def frame_values(values) -> dict[str, float]:
    """The header's {"attribute": number} (their names and ranges are the Chain's to check)."""
    if values is None:
        return {}
    if not isinstance(values, dict) or len(values) > 64:
        raise UsageError('"values" must be an object of at most 64 {"attribute": number}', code="bad_value")
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UsageError(f"{name}: {value!r} is not a finite number", code="bad_value")
    return {str(k): float(v) for k, v in values.items()}


def side_for(model_size: int) -> int:
    """The longer side the page scales frames to: faces a third of it high are cropped at full size."""
    return min(MAX_SIDE, max(MIN_SIDE, 3 * model_size))


class Sides:
    """The side a client is asked to send frames at: enough pixels that the largest face found is
    not enlarged into the models' crop (LiveFrame.zoom), from the first side up to ASK_MAX_SIDE."""

    def __init__(self, first: int):
        self.first = self.asked = first
        self.at = -math.inf

    def ask(self, frame_side: int, zoom: float | None, now: float) -> int | None:
        """After a frame of this longer side: the side to ask for now, or None (no change)."""
        if zoom is None or now - self.at < ASK_EVERY:
            return None
        wanted = min(ASK_MAX_SIDE, max(self.first, 32 * math.ceil(frame_side * zoom / 32)))
        if self.asked / ASK_CHANGE < wanted < self.asked * ASK_CHANGE:
            return None
        self.asked, self.at = wanted, now
        return wanted


def add_camera(app: FastAPI, pool: ModelPool, settings: Settings, work: WorkPool) -> None:
    """The `/api/camera` WebSocket (the Guard has checked Host, Origin and token before it runs)."""
    clients = set()
    limits = Limits(MAX_FRAME_PIXELS, settings.limits.max_faces)

    @app.websocket("/api/camera")
    async def camera(socket: WebSocket):
        if len(clients) >= settings.cameras:
            refusal = f"the camera takes {settings.cameras} clients at once (fader serve --cameras)"
            return await refuse(failure(refusal, "busy", 503), socket.scope, socket.receive, socket.send)
        try:
            fader = pool.require_fader()
        except FaderError as e:
            return await refuse(failure(str(e), e.code, 422), socket.scope, socket.receive, socket.send)
        clients.add(socket)
        try:
            await socket.accept()
            await _serve(socket, fader, work, limits, pool)
        finally:
            clients.discard(socket)


async def _serve(socket: WebSocket, fader, work: WorkPool, limits: Limits, pool: ModelPool) -> None:
    editor = fader.live(fps=STREAM_FPS)
    waiting = Waiting()
    sending = asyncio.Lock()
    side = side_for(fader.chain.size)
    sides = Sides(side)

    async def send(header: dict, body: bytes = b"") -> None:
        async with sending:
            await socket.send_bytes(pack(header, body))

    async def receive() -> None:
        last = -math.inf
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            seq = None
            try:
                if data is None:
                    raise UsageError("camera frames are binary messages", code="bad_frame")
                if len(data) > MAX_FRAME_BYTES:
                    raise UsageError(f"a camera frame is at most {MAX_FRAME_BYTES // 1024} kB", code="too_large")
                header, jpeg = unpack(data)
                seq = header.get("seq")
                values = frame_values(header.get("values"))
            except FaderError as e:
                await send({"seq": seq if isinstance(seq, int) else None, "error": str(e), "code": e.code})
                continue
            now = time.monotonic()
            if now - last < RATE_SLACK / MAX_FPS:
                await send({"seq": seq, "dropped": "rate"})
                continue
            last = now
            replaced = waiting.put(Frame(seq, values, jpeg, now))
            if replaced is not None:
                await send({"seq": replaced.seq, "dropped": "replaced"})

    def edit(frame: Frame) -> tuple[dict, bytes, int | None]:
        from fadercli.media.images import decode_image, from_array
        from fadercli.media.writing import encode_image

        started = time.perf_counter()
        photo = decode_image(frame.jpeg, "a camera frame", limits=limits)
        result = editor.edit(photo.rgb8(), frame.values, at=frame.at)
        ask = sides.ask(max(photo.width, photo.height), result.zoom, frame.at)
        data = encode_image(from_array(result.image), "JPEG", quality=QUALITY)
        faces = [
            {
                "box": [round(v, 1) for v in f.box],
                "estimated": {k: round(v, 4) for k, v in f.estimated.items()},
                "values": f.values and {k: round(v, 4) for k, v in f.values.items()},
                "weight": round(f.weight, 3),
            }
            for f in result.faces
        ]
        header = {"seq": frame.seq, "faces": faces, "server_ms": round(1000 * (time.perf_counter() - started), 1)}
        return header, data, ask

    async def process() -> None:
        while True:
            frame = await waiting.take()
            try:
                header, data, ask = await work.run(edit, frame, kind=INTERACTIVE)
            except FaderError as e:
                await send({"seq": frame.seq, "error": str(e), "code": e.code})
                continue
            except Exception as e:  # a bug: reported as the API reports one, and the stream goes on
                traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
                await send({"seq": frame.seq, "error": f"internal error ({type(e).__name__})", "code": "internal"})
                continue
            if ask is not None:
                async with sending:
                    await socket.send_text(json.dumps({"side": ask}))
            await send(header, data)

    await socket.send_text(
        json.dumps(
            {
                "side": side,
                "fps": MAX_FPS,
                "max_bytes": MAX_FRAME_BYTES,
                "max_pixels": MAX_FRAME_PIXELS,
                "attributes": pool.attributes(),
            }
        )
    )
    # Receiving and editing run side by side until the client leaves (or a send finds it gone); then the
    # other is cancelled with its job, which WorkPool skips when it has not started. Structured (anyio),
    # so that a server cancelling the connection's task cancels both with it.
    async with anyio.create_task_group() as group:

        async def until(work) -> None:
            try:
                await work()
            except WebSocketDisconnect:
                pass
            group.cancel_scope.cancel()

        group.start_soon(until, receive)
        group.start_soon(until, process)

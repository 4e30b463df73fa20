"""The server's gate (ASGI middleware), before any route runs: the Host header (against DNS
rebinding), requests from other sites, the token (compared as bytes, in constant time), and the
body size limit (checked on the declared length and while reading). WebSockets (the camera) pass
the same checks at their handshake, which is refused with the same JSON answers."""

from __future__ import annotations

import hmac

from fastapi.responses import JSONResponse

from fadercli.errors import FaderError
from fadercli.serve.errors import failure
from fadercli.serve.settings import MULTIPART_SLACK, SAFE_METHODS, Settings


def same_token(given: str | bytes, token: str) -> bool:
    """A constant-time comparison of a token as sent (any bytes: headers arrive as latin-1, query
    strings as UTF-8) with the server's, as bytes (compare_digest refuses non-ASCII str)."""
    if isinstance(given, str):
        given = given.encode("utf-8", "replace")
    return hmac.compare_digest(given, token.encode("utf-8"))


class Guard:
    """ASGI middleware: the Host header (against DNS rebinding), requests from other sites, the
    token, and the body size limit."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        socket = scope["type"] == "websocket"

        async def answer(response: JSONResponse) -> None:
            await refuse(response, scope, receive, send)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        allowed = self.settings.allowed_hosts
        if allowed is not None:
            host = headers.get("host", "")
            host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if host.lower() not in allowed:
                return await answer(
                    failure(f"this server answers only to {', '.join(allowed)}, not {host!r}", "bad_host", 400)
                )
        # A WebSocket's handshake is a GET, yet it opens a channel both ways: checked as a change is.
        if (socket or scope["method"] not in SAFE_METHODS) and not self._same_site(scope, headers):
            return await answer(
                failure(
                    "refused a request from another site: only fader's own page (or the --cors origin) may change anything",
                    "cross_site",
                    403,
                )
            )
        path = scope["path"]
        if self.settings.token is not None and path != "/" and not self._authorised(headers):
            return await answer(
                failure(
                    "a token is needed: open the link fader serve printed (…/?token=…), or send Authorization: Bearer TOKEN",
                    "unauthorized",
                    401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            )
        if socket:  # its messages are bounded by uvicorn (ws_max_size) and by the camera
            return await self.app(scope, receive, send)
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
        scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
        if origin is not None and origin.lower() != f"{scheme}://{headers.get('host', '')}".lower():
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


async def refuse(response: JSONResponse, scope, receive, send) -> None:
    """Answer a request with `response`; a WebSocket's handshake too where the server can (uvicorn
    can: the client gets the status and the JSON), else it is closed (policy violation)."""
    if scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
        return await send({"type": "websocket.close", "code": 1008, "reason": ""})
    await response(scope, receive, send)


class _TooLarge(FaderError):
    code = "too_large"


def _too_large_message(size: int, settings: Settings) -> str:
    limit = settings.max_upload_bytes / 2**20
    return f"the upload is {size / 2**20:.1f} MB or more, over the {limit:.3g} MB limit (fader serve --max-upload-mb)"


def _too_large(size: int, settings: Settings) -> JSONResponse:
    return failure(_too_large_message(size, settings), "too_large", 413, headers={"Connection": "close"})

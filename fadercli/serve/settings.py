"""What a server is set to: its token and cookie, the limits on uploads, photos and model work, the
origins and Host names it answers."""

from __future__ import annotations

from dataclasses import dataclass

from fadercli.limits import SERVE, Limits

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


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
    cameras: int = 4  # camera streams at once (serve/camera.py); more are refused 503
    limits: Limits = SERVE  # pixels and faces per photo
    cookie: str = "fader_token"  # the token's cookie; the server names it after its port
    device: str = "cpu"  # how /api/health describes the device
    precision: str = "float32"  # and the models' arithmetic

"""Running the app: the token, torch threads, the listening socket, the URL, uvicorn, Ctrl-C."""

from __future__ import annotations

import faulthandler
import ipaddress
import logging
import math
import os
import re
import secrets
import signal
import socket
import threading
import webbrowser
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from fadercli import say
from fadercli.errors import InputError, UsageError
from fadercli.limits import SERVE, Limits

TOKEN_ENV = "FADER_TOKEN"
# Connections and requests uvicorn takes at once (more get 503), and how long an idle keep-alive
# connection is kept: a crowd of clients or slow sockets cannot hold the server's memory.
MAX_CONNECTIONS = 64
KEEP_ALIVE_SECONDS = 5
STOP_SECONDS = 10  # after Ctrl-C or SIGTERM, the longest a graceful shutdown may take


@dataclass
class Options:
    models: list[str]
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    precision: str = "auto"
    open_browser: bool = False
    token: str | None = None
    token_file: Path | None = None
    max_upload_mb: float = 25
    cache_photos: int = 32
    cache_mb: float = 1024
    max_megapixels: float | None = None  # default: limits.SERVE's
    max_faces: int | None = None
    queue: int = 8
    cameras: int = 4
    cors: str | None = None
    workers: int | None = None
    threads: int | None = None
    threshold: float | None = None
    access_log: bool = False


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def threads_for(workers: int, threads: int | None) -> int:
    """Torch threads per worker so that all workers together use each core once (OMP_NUM_THREADS wins)."""
    if threads is not None:
        return threads
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 1) // workers)


def check(options: Options) -> str | None:
    """The token to require (None: none), or a UsageError for options that cannot work together."""
    if options.port < 0 or options.port > 65535:
        raise UsageError(f"--port must be from 0 to 65535, got {options.port}")
    for name, value, top in (("--max-upload-mb", options.max_upload_mb, 4096), ("--cache-mb", options.cache_mb, 2**20)):
        if not (math.isfinite(value) and 0 < value <= top):  # NaN fails every comparison
            raise UsageError(f"{name} must be a number above 0 and at most {top}, got {value}")
    if options.cache_photos < 1 or options.queue < 0 or options.cameras < 0:
        raise UsageError("--cache-photos must be at least 1, --queue and --cameras at least 0")
    if options.workers is not None and options.workers < 1 or options.threads is not None and options.threads < 1:
        raise UsageError("--workers and --threads must be at least 1")
    check_cors(options.cors)
    token = _token(options)
    if token is not None and len(token) < 8:
        raise UsageError("a token must be at least 8 characters (or --token auto)")
    if token is None and not is_loopback(options.host):
        raise UsageError(
            f"--host {options.host} lets other machines connect: require a token ({TOKEN_ENV}=..., --token-file F"
            " or --token auto)"
        )
    return token


def _token(options: Options) -> str | None:
    """The token from --token, --token-file or $FADER_TOKEN (one of them): "auto" makes one. A file
    or the environment keeps it out of `ps`, where any user of the machine can read a command line."""
    given = [
        (name, value)
        for name, value in (
            ("--token", options.token),
            ("--token-file", options.token_file),
            (TOKEN_ENV, os.environ.get(TOKEN_ENV) or None),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise UsageError(f"give the token one way, not with both {given[0][0]} and {given[1][0]}")
    if not given:
        return None
    name, value = given[0]
    if name == "--token-file":
        try:
            value = Path(value).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"--token-file {value}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    elif name == "--token" and value != "auto":
        say(
            f"--token shows on the command line to every user of this machine (ps): prefer {TOKEN_ENV} or --token-file",
            logging.WARNING,
        )
    return secrets.token_urlsafe(18) if value == "auto" else value


def check_cors(origin: str | None) -> None:
    """--cors names one origin, scheme://host[:port]: a wildcard would let every site use the server
    (and, with the token's cookie, as the user)."""
    if origin is None:
        return
    parts = urlsplit(origin)
    try:
        _ = parts.port  # a port out of range raises here
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not re.fullmatch(r"[a-z0-9.:-]+", parts.hostname or "")
        or origin != f"{parts.scheme}://{parts.netloc}"
        or "@" in parts.netloc
    ):
        raise UsageError(
            f"--cors takes one origin such as https://example.com:8443 (no wildcard, no path), got {origin!r}"
        )


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        hint = " (is another server running? try --port)" if e.errno in (98, 48, 10048) else ""
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}{hint}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run(options: Options) -> None:
    """Load the models, bind, print the URL (stdout), serve until Ctrl-C."""
    token = check(options)
    limits = Limits.of(options.max_megapixels, options.max_faces, base=SERVE)
    workers = options.workers or min(2, os.cpu_count() or 1)
    threads = threads_for(workers, options.threads)

    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    import uvicorn

    from fadercli.devices import describe, pick_device, pick_precision
    from fadercli.serve.app import LOOPBACK_NAMES, Settings, create_app
    from fadercli.serve.camera import MAX_FRAME_BYTES
    from fadercli.serve.models import ModelPool

    device = pick_device(options.device)
    precision = pick_precision(options.precision, device)
    pool = ModelPool(
        options.models, device=device, precision=precision, threshold=options.threshold, quiet=False, limits=limits
    )
    sock = listen(options.host, options.port)
    port = sock.getsockname()[1]
    hosts = None if token else tuple(sorted({*LOOPBACK_NAMES, options.host.lower()}))
    settings = Settings(
        token=token,
        max_upload_bytes=int(options.max_upload_mb * 2**20),
        cache_photos=options.cache_photos,
        cache_bytes=int(options.cache_mb * 2**20),
        cors=options.cors,
        allowed_hosts=hosts,
        workers=workers,
        queue=options.queue,
        cameras=options.cameras,
        limits=limits,
        cookie=f"fader_token_{port}",
        device=describe(device).replace(f"({torch.get_num_threads()} threads)", f"({workers} x {threads} threads)"),
        precision=precision.describe(),
    )
    app = create_app(pool, settings)
    shown = f"[{options.host.strip('[]')}]" if ":" in options.host else options.host
    url = f"http://{'127.0.0.1' if shown in ('0.0.0.0', '[::]') else shown}:{port}/"
    say(f"device: {settings.device}; precision: {settings.precision}")
    loaded = [
        f"{o.name} ({', '.join(o.model.attributes.names)}, {o.model.size} px)" for o in pool.offers.values() if o.model
    ]
    say(f"models: {'; '.join(loaded) if loaded else 'none loaded yet: the page offers the registry'}")
    say(
        f"limits: {limits.max_pixels / 1e6:g} MP and {limits.max_faces} faces a photo, uploads up to"
        f" {options.max_upload_mb:g} MB, {options.queue} jobs waiting"
    )
    # Ctrl-C and SIGTERM stop the server from the moment it says where it is, even when the parent
    # process left them blocked or ignored: uvicorn installs its own handlers only once it runs.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    say(f"serving on {url} (Ctrl-C stops)")
    print(url + (f"?token={token}" if token else ""), flush=True)
    if options.open_browser:
        threading.Timer(0.5, webbrowser.open, [url + (f"?token={token}" if token else "")]).start()
    config = uvicorn.Config(
        app,
        log_level="info" if options.access_log else "warning",
        access_log=options.access_log,
        timeout_graceful_shutdown=3,
        limit_concurrency=MAX_CONNECTIONS,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        ws_max_size=MAX_FRAME_BYTES,  # the camera's frames: a bigger message closes the socket
        ws_per_message_deflate=False,  # JPEGs do not compress: deflating them costs time for nothing
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            if not self.should_exit:  # whatever hangs in the graceful shutdown, the process ends
                watchdog = threading.Timer(STOP_SECONDS, os._exit, [130])  # 130: the shell's code for Ctrl-C
                watchdog.daemon = True
                watchdog.start()
            app.state.work.shutdown()  # requests waiting on model work are answered now, not cancelled later
            super().handle_exit(sig, frame)

    # `kill -USR1 PID` prints every thread's stack to stderr: what a stuck server is doing.
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    try:
        Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down gracefully, then re-raises the signal: the usual way to stop
        pass
    finally:
        sock.close()
    say("stopped")

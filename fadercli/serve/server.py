"""Running the app: torch threads, the listening socket, the URL, uvicorn, Ctrl-C."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import threading
import webbrowser
from dataclasses import dataclass

from fadercli import say
from fadercli.errors import UsageError


@dataclass
class Options:
    models: list[str]
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    open_browser: bool = False
    token: str | None = None
    max_upload_mb: float = 25
    cache_photos: int = 32
    cache_mb: float = 1024
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
    if options.max_upload_mb <= 0 or options.cache_photos < 1 or options.cache_mb <= 0:
        raise UsageError("--max-upload-mb and --cache-mb must be above 0, --cache-photos at least 1")
    if options.workers is not None and options.workers < 1 or options.threads is not None and options.threads < 1:
        raise UsageError("--workers and --threads must be at least 1")
    token = options.token
    if token == "auto":
        token = secrets.token_urlsafe(18)
    if token is not None and len(token) < 8:
        raise UsageError("--token must be at least 8 characters (or auto)")
    if token is None and not is_loopback(options.host):
        raise UsageError(
            f"--host {options.host} lets other machines connect: give --token T (or --token auto) to require a token"
        )
    return token


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
    workers = options.workers or min(2, os.cpu_count() or 1)
    threads = threads_for(workers, options.threads)

    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    import uvicorn

    from fadercli.devices import describe, pick_device
    from fadercli.serve.app import LOOPBACK_NAMES, Settings, create_app
    from fadercli.serve.models import ModelPool

    device = pick_device(options.device)
    pool = ModelPool(options.models, device=device, threshold=options.threshold, quiet=False)
    hosts = None if token else tuple(sorted({*LOOPBACK_NAMES, options.host.lower()}))
    settings = Settings(
        token=token, max_upload_bytes=int(options.max_upload_mb * 2**20), cache_photos=options.cache_photos,
        cache_bytes=int(options.cache_mb * 2**20), cors=options.cors, allowed_hosts=hosts, workers=workers,
        device=describe(device).replace(f"({torch.get_num_threads()} threads)", f"({workers} x {threads} threads)"),
    )
    app = create_app(pool, settings)
    sock = listen(options.host, options.port)
    port = sock.getsockname()[1]
    shown = f"[{options.host.strip('[]')}]" if ":" in options.host else options.host
    url = f"http://{'127.0.0.1' if shown in ('0.0.0.0', '[::]') else shown}:{port}/"
    say(f"device: {settings.device}")
    loaded = [f"{o.name} ({', '.join(o.model.attributes.names)}, {o.model.size} px)" for o in pool.offers.values() if o.model]
    say(f"models: {'; '.join(loaded) if loaded else 'none loaded yet: the page offers the registry'}")
    say(f"serving on {url} (Ctrl-C stops)")
    print(url + (f"?token={token}" if token else ""), flush=True)
    if options.open_browser:
        threading.Timer(0.5, webbrowser.open, [url + (f"?token={token}" if token else "")]).start()
    config = uvicorn.Config(app, log_level="info" if options.access_log else "warning",
                            access_log=options.access_log, timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down gracefully, then re-raises the signal: the usual way to stop
        pass
    finally:
        sock.close()
    say("stopped")

"""`fader serve`: the page with live attribute sliders, and the HTTP API (fadercli/serve)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fadercli.cli.shared import Device, Models, Precision, PrecisionChoice, Threshold, plain
from fadercli.limits import MEGA, SERVE


def serve(
    model: Models = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; other than loopback needs --token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (0: any free one).")] = 8000,
    device: Device = "auto",
    precision: Precision = PrecisionChoice["auto"],
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in a browser.")] = False,
    token: Annotated[
        Optional[str],
        typer.Option(
            "--token",
            help="Require this token on every API call; auto: make one and print it."
            " Visible in ps: prefer $FADER_TOKEN or --token-file.",
        ),
    ] = None,
    token_file: Annotated[
        Optional[Path], typer.Option("--token-file", help="Require the token this file holds (kept out of ps).")
    ] = None,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="Largest upload accepted, in MB.")] = 25,
    max_megapixels: Annotated[
        float, typer.Option("--max-megapixels", help="Largest photo accepted (width x height), in megapixels.")
    ] = SERVE.max_pixels / MEGA,
    max_faces: Annotated[
        int, typer.Option("--max-faces", help="Faces edited per photo (the largest).")
    ] = SERVE.max_faces,
    queue: Annotated[
        int,
        typer.Option(
            "--queue", help="Model jobs of each kind (interactive, bulk) that may wait for a worker; more get 503 Busy."
        ),
    ] = 8,
    cameras: Annotated[
        int, typer.Option("--cameras", help="Clients whose camera may stream to the page at once (0: no camera).")
    ] = 4,
    cache_photos: Annotated[
        int, typer.Option("--cache-photos", help="Photos kept analysed (least recently used go first).")
    ] = 32,
    cache_mb: Annotated[float, typer.Option("--cache-mb", help="Memory the kept photos may take, in MB.")] = 1024,
    cors: Annotated[
        Optional[str],
        typer.Option("--cors", help="One origin (https://host:port) allowed to call the API from its pages."),
    ] = None,
    workers: Annotated[
        Optional[int],
        typer.Option(
            "--workers",
            help="Threads doing model work (default: 2, or 1 on one core); of 2 or more, one only for sliders and the camera.",
        ),
    ] = None,
    threads: Annotated[
        Optional[int], typer.Option("--threads", help="Torch threads per worker (default: cores / workers).")
    ] = None,
    threshold: Threshold = None,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request on stderr.")] = False,
) -> None:
    """Serve a page to edit photos with live attribute sliders, and a JSON API (see README, "fader serve").

    Prints the URL on stdout. Without --model the page offers the registry's models, downloaded on first use. Only its own page (and --cors) may change anything from a browser; see README, "Security". Ctrl-C stops it.
    """
    from fadercli.serve.server import Options, run

    run(
        Options(
            models=model or [],
            host=host,
            port=port,
            device=device,
            precision=plain(precision),
            open_browser=open_browser,
            token=token,
            token_file=token_file,
            max_upload_mb=max_upload_mb,
            max_megapixels=max_megapixels,
            max_faces=max_faces,
            queue=queue,
            cameras=cameras,
            cache_photos=cache_photos,
            cache_mb=cache_mb,
            cors=cors,
            workers=workers,
            threads=threads,
            threshold=threshold,
            access_log=access_log,
        )
    )

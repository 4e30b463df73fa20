"""`fader demo`: train on generated toy faces, offline, and write a sweep GIF."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fadercli.choices import TOY_STYLES
from fadercli.cli.shared import Device, Precision, PrecisionChoice, choice, hush, plain

Style = choice("Style", TOY_STYLES)


def demo(
    out: Annotated[Path, typer.Option(help="Folder for the toy data, the run, sweep.gif and summary.json.")] = Path(
        "fader-demo"
    ),
    minutes: Annotated[float, typer.Option(help="Wall-time budget, data generation included.")] = 4.0,
    faces: Annotated[int, typer.Option(help="Toy faces to generate.")] = 4000,
    img_size: Annotated[int, typer.Option(help="Resolution: 32 is quick on a CPU, 64 looks better.")] = 32,
    seed: Annotated[int, typer.Option(help="Seed for faces and training.")] = 0,
    style: Annotated[
        Style, typer.Option(help="Toy face style: plain is one drawing convention, learnt in minutes.")
    ] = Style["plain"],
    device: Device = "auto",
    precision: Precision = PrecisionChoice["auto"],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or messages.", callback=hush)] = False,
) -> None:
    """Try the method with no download: generate toy faces, train for about 4 minutes on a CPU (2 cores), and write a slider sweep GIF and the scores."""
    from fadercli.demo import run_demo

    summary = run_demo(
        out,
        minutes=minutes,
        faces=faces,
        img_size=img_size,
        seed=seed,
        device_name=device,
        precision=plain(precision),
        quiet=quiet,
        style=plain(style),
    )
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    from fadercli.train.evaluate import summary_lines

    typer.echo(f"sweep: {summary['sweep']}\nmodel: {summary['model']}\nseconds: {summary['seconds']}")
    for line in summary_lines(summary):
        typer.echo(line)

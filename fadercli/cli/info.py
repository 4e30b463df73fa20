"""`fader info MODEL`: what a model file holds."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def info(
    model: Annotated[
        str,
        typer.Argument(
            help="A weights file (.safetensors, an authors' .pth), a run folder, a model name, a URL or hf://OWNER/NAME."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Show a model's attributes, image size, parameter count and training metadata."""
    from fadercli.weights.format import describe
    from fadercli.weights.hub import resolve_model

    record = describe(resolve_model(model, kind=None))
    if as_json:
        typer.echo(json.dumps(record, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("file", record["file"])
    table.add_row("kind", record["kind"])
    for a in record["attributes"]:
        lo, hi = a["slider_range"]
        kind = "binary" if a["categories"] == 2 else f"{a['categories']} categories"
        table.add_row("attribute", f"{a['name']} ({kind}, slider {lo:g} .. {hi:g})")
    table.add_row("image size", f"{record['img_size']} px")
    table.add_row("parameters", f"{record['parameters']:,} (+{record['running_stats']:,} running statistics)")
    config = record["config"]
    arch = ", ".join(f"{k}={v}" for k, v in config.items() if k not in ("attributes", "img_size"))
    table.add_row("architecture", arch)
    evaluation = None
    for key, value in record["training"].items():
        if key == "evaluation" and isinstance(value, dict) and "swap_faces" in value:
            evaluation = value  # printed below the table, as `fader eval` prints it
            continue
        table.add_row(f"training.{key}", value if isinstance(value, str) else json.dumps(value))
    Console().print(table)
    if evaluation is not None:
        from fadercli.train.evaluate import summary_lines

        typer.echo("evaluation at the end of training:")
        for line in summary_lines(evaluation):
            typer.echo(f"  {line}")

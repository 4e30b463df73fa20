"""`fader models`: list, download, locate, remove and import pretrained weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from fadercli.cli.shared import hush

app = typer.Typer(
    name="models",
    help="Pretrained weights: list, download, locate, remove and import them.",
    no_args_is_help=True,
)

Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bar and no waiting/retry messages.", callback=hush)
]


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """Show the registry and the cache: name, attribute, size, cached or not, licence."""
    from fadercli.weights.cache import list_models
    from fadercli.weights.registry import home

    rows = list_models()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, caption=f"cache: {home()}")
    for column in ("name", "attribute", "size", "cached", "licence"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["name"], r["attribute"] or "-", _size(r["size"]), "yes" if r["cached"] else "no", r["licence"])
    Console().print(table)


@app.command()
def download(
    names: Annotated[
        Optional[list[str]],
        typer.Argument(
            help="Registry names, or hf://OWNER/NAME[@REVISION] models.", show_default=False, metavar="NAME..."
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every registry entry.")] = False,
    quiet: Quiet = False,
) -> None:
    """Download (and convert) registry files into the cache, or Hub models into the Hub's cache; print their paths."""
    from fadercli.errors import UsageError
    from fadercli.weights.cache import fetch
    from fadercli.weights.hf import PREFIX
    from fadercli.weights.hub import resolve_model
    from fadercli.weights.registry import registry

    if bool(names) == all_:
        raise UsageError("name the models to download, or give --all")
    for name in list(registry()) if all_ else names:
        # A Hub model is checked as it would be loaded.
        typer.echo(str(resolve_model(name, kind=None).path if name.startswith(PREFIX) else fetch(name, quiet=quiet)))


@app.command()
def path(name: Annotated[str, typer.Argument(help="A registry or cached name.")]) -> None:
    """Print where a model is in the cache (without downloading it)."""
    from fadercli.weights.cache import cached_path

    typer.echo(str(cached_path(name)))


@app.command()
def rm(name: Annotated[str, typer.Argument(help="A cached name.")]) -> None:
    """Remove a model from the cache, with the sha256 recorded at its first download (the next download is checked afresh)."""
    from fadercli.weights.cache import remove

    typer.echo(f"removed {remove(name)}", err=True)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A fader .safetensors file or an authors' .pth file.")],
    name: Annotated[str, typer.Option("--name", help="The name to use it by (e.g. --model NAME).")],
    force: Annotated[bool, typer.Option("--force", help="Replace a cached model of that name.")] = False,
) -> None:
    """Check a local model file and keep it in the cache under a name; print its path."""
    from fadercli.weights.cache import import_model

    typer.echo(str(import_model(file, name, force=force)))

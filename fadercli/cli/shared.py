"""What several commands share: option declarations, and how they report inputs that fail one by one."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from fadercli.errors import FaderError, UsageError

Models = Annotated[
    Optional[list[str]],
    typer.Option(
        "--model",
        "-m",
        help="A registry name, .safetensors file, training run folder, checkpoint.pt, authors' .pth or URL;"
        " repeat it to chain models (each attribute goes to the first model that edits it)."
        " Default: the registry's model for each attribute.",
        show_default=False,
    ),
]
NoAlign = Annotated[
    bool, typer.Option("--no-align", help="Take each whole image as an already aligned face (resize only).")
]
Threshold = Annotated[
    Optional[float],
    typer.Option("--threshold", help="Detector confidence a face needs, 0..1 (default 0.75); lower finds more."),
]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary on stderr.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON record per line on stdout.")]
Face = Annotated[str, typer.Option("--face", help="all, largest, or an index (0 = the largest face).")]
MaxMegapixels = Annotated[
    Optional[float],
    typer.Option(
        "--max-megapixels",
        help="Refuse photos and video frames larger than this, width x height in megapixels (default 100).",
        show_default=False,
    ),
]
MaxFaces = Annotated[
    Optional[int],
    typer.Option("--max-faces", help="Faces edited per photo, the largest first (default 64).", show_default=False),
]


class Failures:
    """Inputs that failed on their own: each is said on stderr as it happens, the others go on, and
    the command ends with the first failure's exit code."""

    def __init__(self) -> None:
        self.errors: list[FaderError] = []

    def report(self, error: FaderError) -> None:
        """Say it and remember it; a usage error concerns every input, so it stops the command."""
        if isinstance(error, UsageError):
            raise error
        typer.echo(f"fader: error: {error}", err=True)
        self.errors.append(error)

    def exit(self) -> None:
        if self.errors:
            raise typer.Exit(self.errors[0].exit_code)

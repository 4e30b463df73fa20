"""What several commands share: option declarations, and how they report inputs that fail one by one."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from fadercli.choices import DEVICES, FACES, PRECISIONS
from fadercli.errors import FaderError


def choice(name: str, values: Sequence[str]) -> type[Enum]:
    """Fixed values as a str Enum: Typer lists them in help and in shell completion."""
    return Enum(name, [(value, value) for value in values], type=str)


def plain(value: Any) -> Any:
    """An option's value as the library takes it (an Enum member's string)."""
    return value.value if isinstance(value, Enum) else value


def completes(values: Sequence[str]) -> Callable[[str], list[str]]:
    """Shell completion for an option whose values are these or open-ended (cuda:N, a face index)."""
    return lambda incomplete: [value for value in values if value.startswith(incomplete)]


complete_device = completes(DEVICES)


def hush(quiet: bool) -> bool:
    """--quiet: only warnings from here on (the root command set the level before this option)."""
    if quiet:
        logging.getLogger("fadercli").setLevel(logging.WARNING)
    return quiet


Models = Annotated[
    Optional[list[str]],
    typer.Option(
        "--model",
        "-m",
        help="A registry name, .safetensors file, training run folder, checkpoint.pt, authors' .pth, URL or"
        " hf://OWNER/NAME[@REVISION];"
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
Device = Annotated[
    str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.", autocompletion=complete_device)
]
PrecisionChoice = choice("Precision", PRECISIONS)
PRECISION_HELP = (
    "The models' arithmetic: auto is bfloat16 where the hardware computes it natively (CUDA; CPUs with"
    " AVX-512 BF16 or AMX), float16 on older GPUs, float32 elsewhere; or fp32, bf16, fp16."
)
Precision = Annotated[PrecisionChoice, typer.Option("--precision", help=PRECISION_HELP, case_sensitive=False)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary on stderr.", callback=hush)]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON record per line on stdout.")]
Face = Annotated[
    str,
    typer.Option(
        "--face",
        help="all, largest, or an index (0 = the largest face).",
        autocompletion=completes((*FACES, "0", "1", "2")),
    ),
]
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

# `fader edit --engine`: this process, a Ray cluster (cli/scale.py, and the options of the Ray panel),
# or an exported ONNX model on onnxruntime (onnxrun.py).
Engine = choice("Engine", ("local", "ray", "onnx"))
RayEngine = Annotated[
    Engine,
    typer.Option(
        "--engine",
        help="local: this process; ray: a Ray cluster (images only; the `ray` extra), see docs/batch.md; onnx:"
        " an exported ONNX model (--model) on onnxruntime, without PyTorch (images only; the `onnx` extra),"
        " see docs/models.md.",
    ),
]
RayAddress = Annotated[
    Optional[str],
    typer.Option(
        "--address",
        help="Ray: auto or HOST:PORT joins a running cluster; default: start Ray on this machine.",
        show_default=False,
        rich_help_panel="Ray",
    ),
]
RayActors = Annotated[
    Optional[int],
    typer.Option(
        "--actors",
        help="Ray: processes editing, each with its own model (default: CPUs / threads).",
        show_default=False,
        rich_help_panel="Ray",
    ),
]
RayThreads = Annotated[
    int, typer.Option("--threads-per-actor", help="Ray: torch threads of each actor.", rich_help_panel="Ray")
]


def say_device(fader) -> None:
    """The line every model command starts with: where the models run, and in what arithmetic."""
    from fadercli import say
    from fadercli.devices import describe

    say(f"device: {describe(fader.device)}; precision: {fader.precision.describe()}")


class Failures:
    """Inputs that failed on their own: each is said on stderr as it happens, the others go on, and
    the command ends with the first failure's exit code."""

    def __init__(self) -> None:
        self.errors: list[FaderError] = []

    def report(self, error: FaderError) -> None:
        """Say it and remember it; a failure that is not one input's (a usage error, a model or download
        that cannot be had) concerns every input, so it stops the command."""
        if not error.one_input:
            raise error
        typer.echo(f"fader: error: {error}", err=True)
        self.errors.append(error)

    def exit(self) -> None:
        if self.errors:
            raise typer.Exit(self.errors[0].exit_code)

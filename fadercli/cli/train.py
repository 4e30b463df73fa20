"""`fader train`, `fader eval`: training on a user's labelled images, and scoring a run."""

from __future__ import annotations

import inspect
import json
import shlex
import time
import typing
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Optional

import typer

from fadercli.choices import TRAINING_CROPS
from fadercli.cli.shared import Device, choice, complete_device, hush, plain

Crop = choice("Crop", TRAINING_CROPS)
LogTo = choice("LogTo", ("jsonl", "tensorboard"))


def _knobs() -> list[inspect.Parameter]:
    """`fader train`'s model and training options, one per TrainConfig field that declares its help."""
    from fadercli.train.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    options = []
    for f in fields(TrainConfig):
        if "help" not in f.metadata:
            continue
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        option = typer.Option(flag, help=f.metadata["help"], rich_help_panel=f.metadata["panel"])
        kind, default = hints[f.name], f.default
        if f.metadata["choices"]:  # listed by help and completion
            values = choice(f.name.title().replace("_", ""), f.metadata["choices"])
            kind, default = (values if default is not None else Optional[values]), (default and values[default])
        options.append(
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, option]
            )
        )
    return options


def _train(
    ctx: typer.Context,
    data: Annotated[
        Optional[Path], typer.Argument(help="Folder of labelled images (formats below).", show_default=False)
    ] = None,
    labels: Annotated[
        Optional[Path], typer.Option(help="CelebA-style attribute file (with --images).", rich_help_panel="Data")
    ] = None,
    images: Annotated[Optional[Path], typer.Option(help="Image folder for --labels.", rich_help_panel="Data")] = None,
    crop: Annotated[
        Crop,
        typer.Option(
            help="celeba: the release's crop of CelebA aligned images (implies --no-align).", rich_help_panel="Data"
        ),
    ] = Crop["none"],
    attr: Annotated[
        Optional[list[str]],
        typer.Option("--attr", help="Attribute to learn (repeatable; default all).", rich_help_panel="Data"),
    ] = None,
    align: Annotated[
        Optional[bool],
        typer.Option(
            "--align/--no-align",
            help="Find and align the largest face of each photo as `fader edit` does (photos without a face are skipped), or take images as already aligned crops. \\[default: --align, or --no-align with --crop celeba]",
            show_default=False,
            rich_help_panel="Data",
        ),
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="Run folder \\[default: runs/<data name>].", rich_help_panel="Run")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out from its checkpoint.", rich_help_panel="Run")
    ] = False,
    device: Annotated[
        str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.", rich_help_panel="Run", autocompletion=complete_device)
    ] = "auto",
    workers: Annotated[int, typer.Option(help="Processes decoding images into the cache.", rich_help_panel="Run")] = 2,
    log_to: Annotated[
        LogTo,
        typer.Option(
            "--log",
            help="Where the curves go besides metrics.jsonl: tensorboard adds event files in RUN/tensorboard.",
            rich_help_panel="Run",
        ),
    ] = LogTo["jsonl"],
    as_json: Annotated[bool, typer.Option("--json", help="Print the final scores as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or messages.", callback=hush)] = False,
    **knobs,
) -> None:
    """Train a Fader Network on your own labelled face images.

    DATA is one of: a folder with labels.csv (first column the image path relative to the folder, then one column per attribute with 1/0, 1/-1, true/false or yes/no); a CelebA-style attribute file given with --labels FILE --images DIR; or, for one attribute, a folder with two subfolders with_<Name>/ and without_<Name>/.
    """
    started = time.monotonic()
    from fadercli.train.config import TrainConfig
    from fadercli.train.run import run_training

    config = TrainConfig(**{name: plain(value) for name, value in knobs.items()})
    crop = plain(crop)
    align = crop == "none" if align is None else align
    data_args = {"data": data, "labels": labels, "images": images, "crop": crop, "align": align, "attributes": attr}
    out = out or Path("runs") / (data or images or Path("fader")).resolve().name
    result = run_training(
        data_args,
        config,
        out,
        device_name=device,
        resume=resume,
        workers=workers,
        quiet=quiet,
        started=started,
        tensorboard=plain(log_to) == "tensorboard",
        command=_command(ctx),
    )
    _report(result, out, as_json)


def _command(ctx: typer.Context) -> str:
    """The command that trained a run (for its model card), rebuilt from the options given on the
    command line in their canonical spelling."""
    words = ["fader", "train"]
    for param in ctx.command.params:
        if param.name in ("quiet", "as_json") or ctx.get_parameter_source(param.name).name != "COMMANDLINE":
            continue
        value = ctx.params[param.name]
        for v in map(plain, value if isinstance(value, (list, tuple)) else [value]):
            if param.param_type_name == "argument":
                words.append(str(v))
            elif isinstance(v, bool):
                words.append(param.opts[0] if v else param.secondary_opts[0])
            else:
                words += [param.opts[0], str(v)]
    return shlex.join(words)


def train(*args, **kwargs) -> None:
    _train(*args, **kwargs)


train.__doc__ = _train.__doc__
_hints = typing.get_type_hints(_train, include_extras=True)
_fixed = [
    p.replace(annotation=_hints[p.name])
    for p in inspect.signature(_train).parameters.values()
    if p.kind != inspect.Parameter.VAR_KEYWORD
]
train.__signature__ = inspect.Signature([*_fixed, *_knobs()])  # what Typer reads: one option per knob


def evaluate(
    run: Annotated[Path, typer.Argument(help="A run folder written by `fader train`.")],
    device: Device = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Recompute swap accuracy and reconstruction PSNR of a run on its validation faces."""
    from fadercli.train.run import evaluate_run

    _report(evaluate_run(run, device_name=device), run, as_json)


def _report(result: dict, out: Path, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"run": str(out), **result}, indent=2))
        return
    if not result:
        return
    from fadercli.train.evaluate import summary_lines

    typer.echo(f"run: {out}   model: {out / 'model.safetensors'}")
    if "steps" in result:
        done = "completed" if result["progress"] >= 1 else f"at {result['progress']:.0%}"
        share = (
            f" ({result['seconds'] / result['wall_seconds']:.0%} of the run's {result['wall_seconds'] / 60:.1f} min)"
            if result.get("wall_seconds")
            else ""
        )
        typer.echo(
            f"trained {result['steps']} steps in {result['seconds'] / 60:.1f} min{share}; schedules {done} "
            f"(final learning rate {result['final_lr']:.3g}); precision: {result['precision']}"
        )
    for line in summary_lines(result):
        typer.echo(line)

"""`fader edit INPUT... --set NAME=VALUE` and `fader inspect INPUT...`: the main job, on real photos."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from fadercli import say
from fadercli.cli.shared import Device, Face, Failures, Json, Models, NoAlign, Quiet, Threshold
from fadercli.errors import FaderError, InputError, OutputError, UsageError

Inputs = Annotated[list[str], typer.Argument(help="Image files, folders (the images in them, sorted) or glob patterns.")]


def edit(
    inputs: Inputs,
    set_: Annotated[
        Optional[list[str]],
        typer.Option("--set", help="NAME=VALUE: 0 without, 1 with, beyond exaggerates (repeatable).", show_default=False),
    ] = None,
    shift: Annotated[
        Optional[list[str]],
        typer.Option(
            "--shift", help="NAME=DELTA: move from the value the model estimates for each face, e.g. Smiling=+0.5 (repeatable).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="The output file (one input only).")] = None,
    out_dir: Annotated[
        Optional[Path], typer.Option("--out-dir", help="Folder for <stem>_fader.<ext> outputs (created if missing).")
    ] = None,
    in_place: Annotated[bool, typer.Option("--in-place", help="Overwrite the inputs themselves.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")] = False,
    fmt: Annotated[
        Optional[str], typer.Option("--format", help="Output format (png, jpg, webp, ...); default: each input's own.")
    ] = None,
    model: Models = None,
    face: Face = "all",
    no_align: NoAlign = False,
    threshold: Threshold = None,
    device: Device = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Faces per pass through the model.")] = 16,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Edit the faces in photos: each output is the input with only its faces changed (<stem>_fader.<ext> beside it by default).

    Outputs keep the input's size, mode and format; existing files are kept unless --force, inputs unless --in-place. Images that fail (no face, unreadable) are reported and skipped; the exit code is then the first failure's.
    """
    from fadercli.api import Fader
    from fadercli.devices import describe
    from fadercli.faces import parse_face_choice
    from fadercli.images import expand_inputs, output_format, save_image
    from fadercli.progress import progress_bar

    values, shifts = _assignments(set_, "--set"), _assignments(shift, "--shift")
    if not values and not shifts:
        raise UsageError("nothing to edit: give --set NAME=VALUE or --shift NAME=DELTA")
    both = {k.lower() for k in values} & {k.lower() for k in shifts}
    if both:
        raise UsageError(f"{sorted(both)[0]} is both set and shifted: give one")
    choice = parse_face_choice(face)
    file_format, extension = output_format(fmt) if fmt else (None, None)
    paths = list(dict.fromkeys(expand_inputs(inputs)))
    if not paths:
        raise InputError(f"no images in {' '.join(inputs)}")
    targets = _targets(paths, output, out_dir, in_place, extension, force)

    fader = Fader.load(
        model or None, attributes=[*values, *shifts], device=device, batch_size=batch_size, threshold=threshold,
        quiet=quiet,
    )
    fader.plan(values, shifts)  # names and values checked before any work
    requested = {"set": _canonical(fader, values), "shift": _canonical(fader, shifts)}
    say(f"device: {describe(fader.device)}")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    failures = Failures()
    written = 0
    with progress_bar(len(paths) > 1 and not quiet) as bar:
        task = bar.add_task("editing", total=len(paths))

        def report(source, error: FaderError) -> None:
            failures.report(error)
            bar.advance(task)

        for result in fader.edit_many(paths, values, shifts, face=choice, align=not no_align, on_error=report):
            target = targets[result.source]
            started = time.perf_counter()
            try:
                save_image(result.image, target, format=file_format)
            except OutputError as e:
                report(result.source, e)
                continue
            written += 1
            bar.advance(task)
            if as_json:
                seconds = result.seconds + time.perf_counter() - started
                record = {"input": str(result.source), "output": str(target),
                          "faces": [f.to_dict() for f in result.faces], "values": requested, "seconds": round(seconds, 3)}
                typer.echo(json.dumps(record))
            else:
                typer.echo(str(target))
    if len(paths) > 1 and not quiet:
        say(f"{written} of {len(paths)} image(s) edited")
    failures.exit()


def _assignments(texts: list[str] | None, option: str) -> dict[str, float]:
    """NAME=VALUE texts -> {NAME: value} (names are checked against the models later)."""
    from fadercli.attributes import parse_assignment

    out: dict[str, float] = {}
    for text in texts or []:
        name, value = parse_assignment(text)
        if name.lower() in {k.lower() for k in out}:
            raise UsageError(f"{option} {name} is given twice")
        out[name] = value
    return out


def _canonical(fader, given: dict[str, float]) -> dict[str, float]:
    return {fader.owner(name)[1]: value for name, value in given.items()}


def _targets(
    paths: list[Path], output: Path | None, out_dir: Path | None, in_place: bool, extension: str | None, force: bool
) -> dict[Path, Path]:
    """Where each input's result goes; every output problem found before any work is done."""
    if sum(map(bool, (output, out_dir, in_place))) > 1:
        raise UsageError("give only one of -o, --out-dir and --in-place")
    if output is not None and len(paths) > 1:
        raise UsageError(f"-o names one output file, but {len(paths)} images were given: use --out-dir")
    if in_place and extension:
        raise UsageError("--in-place keeps each file's format: drop --format")
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out-dir {out_dir} is a file")
    if in_place:
        targets = {p: p for p in paths}
    elif output is not None:
        targets = {paths[0]: output}
    else:
        targets = {p: (out_dir or p.parent) / f"{p.stem}_fader{extension or p.suffix}" for p in paths}
    inputs = {p.resolve(): p for p in paths}
    claimed: dict[Path, Path] = {}
    for source, target in targets.items():
        where = target.resolve()
        if where in claimed:
            raise UsageError(f"{claimed[where]} and {source} would both be written to {target}")
        claimed[where] = source
        if not in_place and where in inputs:
            raise OutputError(f"{target} is an input: use --in-place to overwrite inputs")
        if target.exists() and not (force or in_place):
            raise OutputError(f"{target} exists (use --force to overwrite)")
        if target.is_dir():
            raise OutputError(f"{target} is a folder")
        _check_writable(target.parent, target, create=out_dir is not None)
    return targets


def _check_writable(folder: Path, target: Path, create: bool) -> None:
    """The folder must be a writable folder; one to be created (`create`), its nearest existing parent."""
    existing = folder
    while create and not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write {target}: no such folder {folder}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {target}: {existing} is not writable")


def inspect(
    inputs: Inputs,
    model: Models = None,
    attr: Annotated[
        Optional[list[str]],
        typer.Option("--attr", help="Without --model: inspect with the registry's model for this attribute (repeatable).", show_default=False),
    ] = None,
    face: Face = "all",
    no_align: NoAlign = False,
    threshold: Threshold = None,
    device: Device = "auto",
    as_json: Json = False,
) -> None:
    """Print each face's own attribute values as the model estimates them (the values whose reconstruction matches the face best), and where a classifier is at hand (a training run's, the authors' for theirs) its probabilities."""
    from fadercli.api import Fader
    from fadercli.devices import describe
    from fadercli.faces import parse_face_choice
    from fadercli.images import expand_inputs

    choice = parse_face_choice(face)
    paths = list(dict.fromkeys(expand_inputs(inputs)))
    fader = Fader.load(model or None, attributes=attr or [], device=device, threshold=threshold)
    say(f"device: {describe(fader.device)}")
    shown = [fader.owner(a)[1] for a in attr] if attr else fader.attributes
    failures = Failures()
    for path in paths:
        try:
            results = fader.inspect(path, face=choice, align=not no_align)
        except FaderError as e:
            failures.report(e)
            continue
        for result in results:
            if as_json:
                typer.echo(json.dumps({"input": str(path), **result.to_dict()}))
                continue
            parts = []
            for name in shown:
                p = (result.probabilities or {}).get(name)
                seen = f" (classifier {p:.0%})" if isinstance(p, float) else ""
                parts.append(f"{name} {result.estimated[name]:.2f}{seen}")
            typer.echo(f"{path}  face {result.index}  " + "  ".join(parts))
    failures.exit()

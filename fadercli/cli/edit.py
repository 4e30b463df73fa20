"""`fader edit INPUT... --set NAME=VALUE` and `fader inspect INPUT...`: the main job, on real photos."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from fadercli import say
from fadercli.choices import IMAGE_FORMATS, PRESETS
from fadercli.cli.outputs import canonical, check_targets, distinct, one_destination
from fadercli.cli.shared import (
    Device,
    Engine,
    Face,
    Failures,
    Json,
    MaxFaces,
    MaxMegapixels,
    Models,
    NoAlign,
    Precision,
    PrecisionChoice,
    Quiet,
    RayActors,
    RayAddress,
    RayEngine,
    RayThreads,
    Threshold,
    choice,
    plain,
    say_device,
)
from fadercli.errors import FaderError, InputError, OutputError, UsageError

Format = choice("Format", IMAGE_FORMATS)
Preset = choice("Preset", PRESETS)

Inputs = Annotated[
    list[str],
    typer.Argument(help="Image files, folders (the images in them, sorted) or glob patterns.", metavar="INPUT..."),
]
Media = Annotated[
    list[str],
    typer.Argument(
        help="Image and video files, folders (the images and clips in them, sorted) or glob patterns.",
        metavar="INPUT...",
    ),
]
Partial = Annotated[
    bool, typer.Option("--partial", help="Clips: a truncated clip gives the frames that decode (else it is refused).")
]


def edit(
    inputs: Media,
    set_: Annotated[
        Optional[list[str]],
        typer.Option(
            "--set", help="NAME=VALUE: 0 without, 1 with, beyond exaggerates (repeatable).", show_default=False
        ),
    ] = None,
    shift: Annotated[
        Optional[list[str]],
        typer.Option(
            "--shift",
            help="NAME=DELTA: move from the value the model estimates for each face, e.g. Smiling=+0.5 (repeatable).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="The output file (one input only).")] = None,
    out_dir: Annotated[
        Optional[str],
        typer.Option(
            "--out-dir",
            help="Folder for <stem>_fader.<ext> outputs (created if missing); with --engine ray also a URI"
            " (s3://, gs://, file://).",
            show_default=False,
        ),
    ] = None,
    in_place: Annotated[bool, typer.Option("--in-place", help="Overwrite the inputs themselves.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")] = False,
    fmt: Annotated[
        Optional[Format],
        typer.Option("--format", help="Output image format; default: each input's own.", case_sensitive=False),
    ] = None,
    model: Models = None,
    face: Face = "all",
    no_align: NoAlign = False,
    threshold: Threshold = None,
    device: Device = "auto",
    precision: Precision = PrecisionChoice["auto"],
    batch_size: Annotated[int, typer.Option("--batch-size", help="Faces per pass through the model.")] = 16,
    crf: Annotated[
        Optional[int],
        typer.Option(
            "--crf",
            help="Clips: constant quality, lower is better (H.264 0-51, default 18; VP9 0-63, default 30).",
            show_default=False,
        ),
    ] = None,
    preset: Annotated[
        Preset, typer.Option("--preset", help="Clips: H.264's speed/size trade-off (VP9: its speed).")
    ] = Preset["medium"],
    partial: Partial = False,
    allow_no_face: Annotated[
        bool,
        typer.Option(
            "--allow-no-face", help="Clips: write a clip in which no face is found, unedited (else exit code 4)."
        ),
    ] = False,
    max_megapixels: MaxMegapixels = None,
    max_faces: MaxFaces = None,
    as_json: Json = False,
    quiet: Quiet = False,
    engine: RayEngine = Engine["local"],
    address: RayAddress = None,
    actors: RayActors = None,
    threads_per_actor: RayThreads = 1,
) -> None:
    """Edit the faces in photos and clips: each output is the input with only its faces changed (<stem>_fader.<ext> beside it by default).

    Outputs keep the input's size, mode and format; existing files are kept unless --force, inputs unless --in-place. Clips (mp4, mov, mkv, webm, avi, ...) keep their frame rate, timestamps, rotation, audio and subtitles (copied); the picture is H.264 (VP9 in .webm). Inputs that fail (no face, unreadable) are reported and skipped; the exit code is then the first failure's.
    """
    from fadercli.attributes import edit_values
    from fadercli.faces import parse_face_choice
    from fadercli.limits import Limits
    from fadercli.media.formats import expand_inputs, is_video, output_format

    limits = Limits.of(max_megapixels, max_faces)
    values, shifts = edit_values(set_, shift)
    choice = parse_face_choice(face)
    file_format, extension = output_format(plain(fmt)) if fmt else (None, None)
    if plain(engine) == "ray":
        from fadercli.cli.scale import edit_on_ray

        if in_place:
            raise UsageError("--engine ray writes new files: give --out-dir (or drop --in-place)")
        editor = dict(models=model or None, values=values, shift=shifts, face=choice, align=not no_align)
        editor |= dict(threshold=threshold, device=device, precision=plain(precision))
        editor |= dict(max_megapixels=max_megapixels, max_faces=max_faces)
        return edit_on_ray(
            inputs,
            output=output,
            out_dir=out_dir,
            force=force,
            file_format=file_format,
            extension=extension,
            editor=editor,
            as_json=as_json,
            quiet=quiet,
            address=address,
            actors=actors,
            threads_per_actor=threads_per_actor,
            batch_size=batch_size,
        )
    from fadercli.batch import is_uri

    if out_dir is not None and is_uri(out_dir):
        raise UsageError(f"--out-dir {out_dir}: a URI needs --engine ray")
    out_dir = Path(out_dir) if out_dir is not None else None
    preset = plain(preset)
    paths = list(dict.fromkeys(expand_inputs(inputs, clips=True)))
    if not paths:
        raise InputError(f"no images or clips in {' '.join(inputs)}")
    clips = [p for p in paths if is_video(p)]
    photos = [p for p in paths if not is_video(p)]
    targets = _targets(paths, output, out_dir, in_place, extension, clips=set(clips))
    if clips and plain(engine) == "onnx":
        raise UsageError(f"--engine onnx edits photos, and {clips[0]} is a clip: use the local engine for clips")
    if clips:
        from fadercli.media.encoder import check_settings, muxer_for

        for clip in clips:
            check_settings(muxer_for(targets[clip]), crf, preset)

    settings = dict(device=device, batch_size=batch_size, threshold=threshold, limits=limits)
    if plain(engine) == "onnx":
        fader = _onnx_model(model, plain(precision), **settings)
        models = [str(fader.path)]
    else:
        from fadercli.api import Fader

        fader = Fader.load(
            model or None, attributes=[*values, *shifts], precision=plain(precision), quiet=quiet, **settings
        )
        models = [m.loaded.source for m in fader.models]
    fader.plan(values, shifts)  # names and values checked before any work
    check_targets(targets, out_dir, in_place, force)
    requested = {"set": canonical(fader, values), "shift": canonical(fader, shifts)}
    if plain(engine) == "onnx":
        say(f"onnxruntime: {', '.join(fader.providers)}")
    else:
        say_device(fader)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    failures = Failures()
    options = _Edit(fader, models, values, shifts, choice, not no_align, requested, as_json, quiet, failures)
    written = _edit_photos(options, photos, targets, file_format)
    written += _edit_clips(
        options, clips, targets, crf=crf, preset=preset, partial=partial, allow_no_face=allow_no_face
    )
    if len(paths) > 1:
        say(f"{written} of {len(paths)} {'input(s)' if clips else 'image(s)'} edited")
    failures.exit()


@dataclass
class _Edit:
    """What `fader edit` does to every input, and how it reports."""

    fader: Any  # an api.Fader, or for --engine onnx an onnxrun.OnnxFader
    models: list[str]  # what the records name as the models
    values: dict[str, float]
    shifts: dict[str, float]
    face: str | int
    align: bool
    requested: dict
    as_json: bool
    quiet: bool
    failures: Failures


def _onnx_model(models: list[str] | None, precision: str, *, device: str, **settings):
    """--engine onnx: the one exported model --model names (onnxrun.OnnxFader, no torch)."""
    from fadercli.onnxrun import OnnxFader

    if not models or len(models) != 1:
        raise UsageError("--engine onnx needs one --model: an exported model (FILE.analyse.onnx, or its folder)")
    if precision not in ("auto", "fp32"):
        raise UsageError("--engine onnx runs the exported float32 graphs: drop --precision")
    return OnnxFader.load(models[0], device=device, **settings)


def _edit_photos(edit: _Edit, photos: list[Path], targets: dict[Path, Path], file_format: str | None) -> int:
    """Edit the photos (faces batched across them), write each result; the number written."""
    from fadercli.media.writing import save_image
    from fadercli.progress import progress_bar

    written = 0
    with progress_bar(len(photos) > 1 and not edit.quiet) as bar:
        task = bar.add_task("editing", total=len(photos))

        def report(source, error: FaderError) -> None:
            edit.failures.report(error)
            bar.advance(task)

        results = edit.fader.edit_many(
            photos, edit.values, edit.shifts, face=edit.face, align=edit.align, on_error=report
        )
        for result in results:
            target = targets[result.source]
            started = time.perf_counter()
            try:
                save_image(result.image, target, format=file_format)
            except OutputError as e:
                report(result.source, e)
                continue
            written += 1
            bar.advance(task)
            if edit.as_json:
                seconds = result.seconds + time.perf_counter() - started
                faces = [f.to_dict() for f in result.faces]
                record = {
                    "input": str(result.source),
                    "output": str(target),
                    "faces": faces,
                    "values": edit.requested,
                    "models": edit.models,
                    "seconds": round(seconds, 3),
                }
                typer.echo(json.dumps(record))
            else:
                typer.echo(str(target))
    return written


def _edit_clips(edit: _Edit, clips: list[Path], targets: dict[Path, Path], **settings) -> int:
    """Edit the clips one by one (each with its own progress bars); the number written."""
    from fadercli.progress import progress_bar

    written = 0
    for clip in clips:
        target = targets[clip]
        with progress_bar(not edit.quiet, info=True) as bar:
            try:
                result = edit.fader.edit_video(
                    clip,
                    target,
                    edit.values,
                    edit.shifts,
                    face=edit.face,
                    align=edit.align,
                    progress=frame_progress(bar, clip.name),
                    **settings,
                )
            except FaderError as e:
                edit.failures.report(e)
                continue
        written += 1
        for note in result.notes:
            say(note, logging.WARNING)
        if edit.as_json:
            record = {
                "input": str(clip),
                "output": str(target),
                "frames": result.frames,
                "fps": round(result.rate, 3),
                "size": list(result.size),
                "tracks": [t.to_dict() for t in result.tracks],
                "values": edit.requested,
                "models": edit.models,
                "seconds": round(result.seconds, 3),
            }
            typer.echo(json.dumps(record))
        else:
            typer.echo(str(target))
        rate = result.frames / result.seconds
        say(f"{clip}: {result.frames} frames, {len(result.tracks)} face track(s), {rate:.1f} frames/s")
    return written


def frame_progress(bar, name: str):
    """A progress callback for Fader.edit_video / inspect_video: a bar per stage, with frames/s."""
    tasks: dict[str, tuple[int, float]] = {}
    last = [time.perf_counter()]  # a stage starts where the one before ended

    def update(stage: str, done: int, total: int | None) -> None:
        now = time.perf_counter()
        if stage not in tasks:
            tasks[stage] = (bar.add_task(f"{name}: {stage}", total=total, info=""), last[0])
        task, started = tasks[stage]
        last[0] = now
        speed = f"{done / (now - started):.1f} frames/s" if now - started > 0.2 else ""
        bar.update(task, completed=done, total=total, info=speed)

    return update


def _targets(
    paths: list[Path],
    output: Path | None,
    out_dir: Path | None,
    in_place: bool,
    extension: str | None,
    clips: set[Path] = frozenset(),
) -> dict[Path, Path]:
    """Where each input's result goes (--format's extension for photos; `clips` keep theirs); the
    usage problems of that choice (the files themselves are checked by check_targets)."""
    from fadercli.media.formats import edited_name

    one_destination(output, out_dir, in_place, len(paths))
    if in_place and extension:
        raise UsageError("--in-place keeps each file's format: drop --format")
    if in_place:
        targets = {p: p for p in paths}
    elif output is not None:
        targets = {paths[0]: output}
    else:
        targets = {p: (out_dir or p.parent) / edited_name(p.name, _suffix(p, extension, clips)) for p in paths}
    distinct(targets, Path.resolve)
    return targets


def _suffix(path: Path, extension: str | None, clips: set[Path]) -> str:
    """An output's extension: --format's for photos; a clip's own where fader writes it, else .mp4."""
    if path not in clips:
        return extension or path.suffix
    from fadercli.media.formats import is_writable_video

    return path.suffix if is_writable_video(path) else ".mp4"

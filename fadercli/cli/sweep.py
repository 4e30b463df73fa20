"""`fader sweep INPUT... --attr NAME --steps N -o OUT`: an attribute slid through its range, as a GIF, a video or a grid."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fadercli import say
from fadercli.cli.edit import Inputs
from fadercli.cli.shared import (
    Device,
    Face,
    MaxFaces,
    MaxMegapixels,
    Models,
    NoAlign,
    Precision,
    PrecisionChoice,
    Quiet,
    Threshold,
    plain,
    say_device,
)
from fadercli.errors import OutputError, UsageError, import_extra
from fadercli.limits import MAX_STEPS


def sweep(
    inputs: Inputs,
    attr: Annotated[list[str], typer.Option("--attr", help="Attribute to slide (repeatable).", show_default=False)],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help=".gif: an animation; .mp4, .webm, ...: the same as video; .png, .jpg, ...: a grid."
        ),
    ],
    steps: Annotated[int, typer.Option("--steps", help="Values from the low to the high end.")] = 10,
    seconds: Annotated[
        Optional[float],
        typer.Option(
            "--seconds",
            help="Animations: last this long, a value per frame between the range's ends (instead of --steps).",
            show_default=False,
        ),
    ] = None,
    value_range: Annotated[
        Optional[str],
        typer.Option(
            "--range", help="LO:HI, e.g. -1:2; default: each attribute's recommended range.", show_default=False
        ),
    ] = None,
    model: Models = None,
    face: Face = "largest",
    no_align: NoAlign = False,
    crop: Annotated[
        bool, typer.Option("--crop", help="Show the aligned face crops instead of the whole photos.")
    ] = False,
    loop: Annotated[
        bool,
        typer.Option(
            "--loop/--bounce", help="Animations: restart from the low end, or go back down (2 x steps - 2 frames)."
        ),
    ] = True,
    fps: Annotated[
        Optional[float],
        typer.Option(
            "--fps",
            help="Animation frames per second: default 8, or 25 with --seconds (GIF rounds frame times to 1/100 s).",
            show_default=False,
        ),
    ] = None,
    max_size: Annotated[int, typer.Option("--max-size", help="Longer side of each cell, in pixels.")] = 256,
    threshold: Threshold = None,
    device: Device = "auto",
    precision: Precision = PrecisionChoice["auto"],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
    max_megapixels: MaxMegapixels = None,
    max_faces: MaxFaces = None,
    quiet: Quiet = False,
) -> None:
    """Slide attributes through a range of values: an animated GIF or video (.mp4: H.264, .webm: VP9, full colour) whose every frame is a grid (a row per input, or per face with --crop; a column per attribute; the value under each cell), or a static grid (a row per input and attribute: the original, then each step).

    Each face is encoded once; all steps are decoded in batches. Cells are scaled so that their longer side is --max-size: a grid of R rows and C columns of w x h cells is C x (w + 2) + 2 by R x (h + 14) + 2 pixels.
    """
    from fadercli.api import Fader
    from fadercli.faces import parse_face_choice
    from fadercli.limits import Limits
    from fadercli.media.formats import expand_inputs, image_format, is_writable_video

    video = is_writable_video(output)
    if video:
        import_extra("av", "video")  # before any work
    animated = video or output.suffix.lower() == ".gif"
    if not animated and image_format(output) is None:
        raise UsageError(
            f"-o {output}: give a .gif or .mp4/.webm (animation) or an image file name such as .png or .jpg (grid)"
        )
    fps = fps if fps is not None else 25.0 if seconds is not None else 8.0
    if not 0 < fps <= (120 if video else 50):
        raise UsageError(f"--fps must be above 0 and at most {120 if video else 50}, got {fps:g}")
    if seconds is not None:
        if not animated:
            raise UsageError("--seconds is for animations (.gif, .mp4, .webm, ...), not a grid")
        if not 0 < seconds <= 600:
            raise UsageError(f"--seconds must be above 0 and at most 600, got {seconds:g}")
        steps = _steps_lasting(seconds, fps, bounce=not loop)
        if steps > MAX_STEPS:
            raise UsageError(
                f"--seconds {seconds:g} at {fps:g} fps makes {steps} steps, more than {MAX_STEPS}: lower one"
            )
    if not 2 <= steps <= MAX_STEPS:
        raise UsageError(f"--steps must be from 2 to {MAX_STEPS}, got {steps}")
    bounds = _range(value_range) if value_range else None
    choice = parse_face_choice(face)
    paths = list(dict.fromkeys(expand_inputs(inputs)))
    fader = Fader.load(
        model or None,
        attributes=attr,
        device=device,
        precision=plain(precision),
        threshold=threshold,
        quiet=quiet,
        limits=Limits.of(max_megapixels, max_faces),
    )
    # Output problems after the usage errors (unknown attributes, devices) that loading finds.
    if output.exists() and not force:
        raise OutputError(f"{output} exists (use --force to overwrite)")
    if not output.parent.is_dir():
        raise OutputError(f"cannot write {output}: no such folder {output.parent}")
    say_device(fader)
    result = fader.sweep(
        paths, attr, steps=steps, value_range=bounds, face=choice, align=not no_align, crop=crop, max_size=max_size
    )
    result.save(output, fps=fps, bounce=not loop)
    what = f"{len(result.order(not loop))} frames at {fps:g} fps" if animated else "a grid"
    say(f"{output}: {what} of {len(result.cells)} input(s) x {len(result.attributes)} attribute(s)")
    typer.echo(str(output))


def _steps_lasting(seconds: float, fps: float, bounce: bool) -> int:
    """Steps whose animation lasts `seconds` at `fps`: a step per frame (bouncing: 2 x steps - 2
    frames, so an odd count of frames comes out one short)."""
    frames = max(2, round(seconds * fps))
    return frames // 2 + 1 if bounce else frames


def _range(text: str) -> tuple[float, float]:
    from fadercli.attributes import parse_number

    lo, sep, hi = text.partition(":")
    if not sep:
        raise UsageError(f"--range takes LO:HI, e.g. -1:2, got {text!r}")
    return parse_number(lo.strip(), "--range low end"), parse_number(hi.strip(), "--range high end")

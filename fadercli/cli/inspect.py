"""`fader inspect INPUT...`: each face's own attribute values, as the models estimate them."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Optional

import typer

from fadercli import say
from fadercli.cli.edit import Media, Partial, frame_progress
from fadercli.cli.shared import (
    Device,
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
    Threshold,
    plain,
    say_device,
)
from fadercli.errors import FaderError


def inspect(
    inputs: Media,
    model: Models = None,
    attr: Annotated[
        Optional[list[str]],
        typer.Option(
            "--attr",
            help="Without --model: inspect with the registry's model for this attribute (repeatable).",
            show_default=False,
        ),
    ] = None,
    face: Face = "all",
    no_align: NoAlign = False,
    threshold: Threshold = None,
    device: Device = "auto",
    precision: Precision = PrecisionChoice["auto"],
    partial: Partial = False,
    max_megapixels: MaxMegapixels = None,
    max_faces: MaxFaces = None,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Print each face's own attribute values as the model estimates them (the values whose reconstruction matches the face best), and where a classifier is at hand (a training run's, the authors' for theirs) its probabilities.

    A clip gives a line per face track: the frames it spans and the median of its values over frames spread along it.
    """
    from fadercli.api import Fader
    from fadercli.faces import parse_face_choice
    from fadercli.limits import Limits
    from fadercli.media.formats import expand_inputs, is_video
    from fadercli.progress import progress_bar

    limits = Limits.of(max_megapixels, max_faces)
    choice = parse_face_choice(face)
    paths = list(dict.fromkeys(expand_inputs(inputs, clips=True)))
    fader = Fader.load(
        model or None,
        attributes=attr or [],
        device=device,
        precision=plain(precision),
        threshold=threshold,
        limits=limits,
    )
    say_device(fader)
    shown = [fader.owner(a)[1] for a in attr] if attr else fader.attributes
    failures = Failures()
    for path in paths:
        try:
            if is_video(path):
                with progress_bar(not quiet, info=True) as bar:
                    clip = fader.inspect_video(
                        path, face=choice, align=not no_align, partial=partial, progress=frame_progress(bar, path.name)
                    )
                for note in clip.notes:
                    say(note, logging.WARNING)
                results = clip.tracks
            else:
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
            where = (
                f"track {result.index}  frames {result.first}-{result.last}"
                if is_video(path)
                else f"face {result.index}"
            )
            typer.echo(f"{path}  {where}  " + "  ".join(parts))
    failures.exit()

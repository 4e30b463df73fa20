"""`fader align INPUT... --out-dir DIR`: aligned face crops, as the models see them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fadercli.cli.shared import Face, Failures, MaxFaces, MaxMegapixels, NoAlign, Threshold
from fadercli.errors import FaderError, OutputError, UsageError


def align(
    inputs: Annotated[
        list[str],
        typer.Argument(help="Image files, folders (the images in them) or glob patterns.", metavar="INPUT..."),
    ],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Folder for the crops (created if missing).")],
    size: Annotated[int, typer.Option("--size", help="Crop size in pixels.")] = 256,
    face: Face = "all",
    no_align: NoAlign = False,
    threshold: Threshold = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Also write <stem>_debug.jpg: boxes, landmarks and crop outlines.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON record per face on stdout.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")] = False,
    max_megapixels: MaxMegapixels = None,
    max_faces: MaxFaces = None,
) -> None:
    """Find, align and crop the faces in photos, framed as CelebA's aligned images (<stem>_face<k>.png).

    Images without a face are reported on stderr and skipped; the exit code is the first failure's (4: no face).
    """
    from fadercli import faces as facelib
    from fadercli.limits import Limits
    from fadercli.media.formats import expand_inputs
    from fadercli.media.images import from_array, read_image, to_uint8
    from fadercli.media.writing import save_image

    if not 16 <= size <= 4096:
        raise UsageError(f"--size must be from 16 to 4096 pixels, got {size}")
    choice = facelib.parse_face_choice(face)
    limits = Limits.of(max_megapixels, max_faces)
    options = {"max_faces": limits.max_faces} | ({} if threshold is None else {"threshold": threshold})
    paths = expand_inputs(inputs)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out-dir {out_dir} is a file")
    out_dir.mkdir(parents=True, exist_ok=True)

    def output(name: str) -> Path:
        path = out_dir / name
        if path.exists() and not force:
            raise OutputError(f"{path} exists (use --force to overwrite)")
        return path

    failures = Failures()
    written = 0
    for path in paths:
        try:
            photo = read_image(path, limits=limits)
            aligned = facelib.align_faces(photo, size=size, choice=choice, align=not no_align, **options)
            targets = [output(f"{path.stem}_face{item.index}.png") for item in aligned]
            debug_path = output(f"{path.stem}_debug.jpg") if debug else None
            for item, target in zip(aligned, targets):
                save_image(from_array(to_uint8(item.crop)), target)
                written += 1
                if as_json:
                    typer.echo(json.dumps(_record(path, target, item)))
            if debug_path:
                save_image(from_array(facelib.debug_view(photo, aligned)), debug_path, quality=90)
        except FaderError as e:
            failures.report(e)
    typer.echo(f"fader: {written} face crop(s) from {len(paths)} image(s) in {out_dir}", err=True)
    failures.exit()


def _record(path: Path, output: Path, item) -> dict:
    """What `--json` prints for one face: enough to check the geometry independently."""
    face = item.face
    return {
        "input": str(path),
        "output": str(output),
        "face": item.index,
        "size": item.alignment.size,
        "box": None if face is None else [round(v, 2) for v in face.box],
        "landmarks": None if face is None else [[round(x, 2), round(y, 2)] for x, y in face.landmarks],
        "score": None if face is None else round(face.score, 4),
        "transform": [[round(v, 6) for v in row] for row in item.alignment.matrix],
    }

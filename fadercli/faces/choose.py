"""Choosing faces (`--face all`, `largest`, or an index, 0 the largest) and the whole way from a
photo to the crops a model takes."""

from __future__ import annotations

import os
from typing import TypeVar

from fadercli.errors import NoFaceError, UsageError
from fadercli.faces.detect import DEFAULT_THRESHOLD, find_faces
from fadercli.faces.geometry import DEFAULT_SIZE, AlignedFace, Face, alignment_for, crop, whole_image
from fadercli.limits import DEFAULT as DEFAULT_LIMITS
from fadercli.media.images import Photo

T = TypeVar("T")


def parse_face_choice(text: str) -> str | int:
    """`--face`: "all", "largest", or an index into the faces sorted largest first (0 = largest)."""
    value = text.strip().lower()
    if value in ("all", "largest"):
        return value
    if value.isascii() and value.isdigit() and len(value) <= 6:  # "²".isdigit() too, and int() refuses it
        return int(value)
    raise UsageError(f"--face must be all, largest or a face index (0 = the largest), got {text!r}")


def pick(items: list[tuple[int, T]], choice: str | int, where: str, counted: str = "found") -> list[tuple[int, T]]:
    """The (index, item) pairs `choice` names among `items` (largest first): all of them, the first,
    or the one with that index; NoFaceError if it is not there. Photos, analyses and video tracks
    choose their faces alike."""
    if choice == "all":
        return items
    if choice == "largest":
        return items[:1]
    for index, item in items:
        if index == choice:
            return [(index, item)]
    raise NoFaceError(f"no face {choice} in {where}: {len(items)} {counted} (0 = the largest)", code="no_such_face")


def select_faces(faces: list[Face], choice: str | int, where: str = "the photo") -> list[tuple[int, Face]]:
    """The chosen faces with their indices; NoFaceError when there is none to choose."""
    if not faces:
        raise NoFaceError(f"no face found in {where}")
    return pick(list(enumerate(faces)), choice, where)


def align_faces(
    photo: Photo,
    *,
    size: int = DEFAULT_SIZE,
    choice: str | int = "all",
    align: bool = True,
    threshold: float = DEFAULT_THRESHOLD,
    model: str | os.PathLike | None = None,
    max_faces: int = DEFAULT_LIMITS.max_faces,
) -> list[AlignedFace]:
    """Find, choose and align faces (at most `max_faces`, the largest): the crops a model takes.
    With align=False the whole photo is one crop (resized to size x size). NoFaceError when no face
    is found."""
    if not align:
        alignment = whole_image(photo.width, photo.height, size)
        return [AlignedFace(0, None, alignment, crop(photo, alignment))]
    where = str(photo.path) if photo.path else "the photo"
    chosen = select_faces(find_faces(photo, threshold=threshold, model=model, max_faces=max_faces), choice, where)
    aligned = []
    for index, face in chosen:
        alignment = alignment_for(face, size)
        aligned.append(AlignedFace(index, face, alignment, crop(photo, alignment)))
    return aligned

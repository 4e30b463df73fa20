"""Pasting edits back: the change (edit minus reconstruction, or a whole crop minus the photo) is
warped into the photo at its own resolution and added under a soft elliptical mask drawn in crop
space; only pixels where the mask is above zero are touched, so all others stay bit-identical."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from fadercli.faces.geometry import AlignedFace, Alignment, _footprint, _warp
from fadercli.media.images import Photo

PASTE_BAND = 256  # rows pasted at a time


# The paste-back mask, in crop coordinates scaled to [0, 1] (see _weights): its edge stays inside
# the crop on every side, so nothing outside the crop is ever touched.
MASK_CENTRE = (0.5, 0.5)


MASK_RADII = (0.42, 0.46)


MASK_FULL = 0.75


def _weights(alignment: Alignment, box: tuple[int, int, int, int]) -> np.ndarray:
    """The paste-back weight (float32 in [0, 1]) of each photo pixel in the box x0, y0, x1, y1: an
    ellipse in crop space, full inside MASK_FULL of it and fading to zero at its edge (smoothstep,
    so no visible seam)."""
    x0, y0, x1, y1 = box
    if alignment.whole:
        return np.ones((y1 - y0, x1 - x0), np.float32)
    x = np.arange(x0, x1, dtype=np.float32)[None, :]
    y = np.arange(y0, y1, dtype=np.float32)[:, None]
    m = alignment.m.astype(np.float32)
    size = alignment.size
    u = (m[0, 0] * x + m[0, 1] * y + (m[0, 2] + 0.5)) / size - MASK_CENTRE[0]
    v = (m[1, 0] * x + m[1, 1] * y + (m[1, 2] + 0.5)) / size - MASK_CENTRE[1]
    t = np.clip((1 - np.hypot(u / MASK_RADII[0], v / MASK_RADII[1])) / (1 - MASK_FULL), 0, 1)
    return t * t * (3 - 2 * t)


def photo_mask(alignment: Alignment, width: int, height: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The paste-back weights in photo space: (weights of the box, box x0, y0, x1, y1); zero elsewhere."""
    box = _footprint(alignment, width, height)
    return _weights(alignment, box), box


def paste(
    photo: Photo,
    alignment: Alignment,
    crop: np.ndarray,
    reference: np.ndarray | None = None,
    *,
    inplace: bool = False,
) -> Photo:
    """Put a crop-space result back into the photo, at the photo's resolution, under the soft mask.

    With `reference` (the model's reconstruction of the same face), only the change crop -
    reference is added to the photo's own pixels: detail the model cannot reproduce stays, and
    crop == reference leaves the photo exactly as it was. Without it, the crop replaces the face
    (blended at the mask's edge). Pixels where the mask is zero are never touched. Crops are
    size x size x 3 RGB in [0, 1]. Returns the edited photo (a copy unless `inplace`).
    """
    out = photo if inplace else photo.copy()
    size = alignment.size
    for name, array in (("crop", crop), ("reference", reference)):
        if array is not None and np.shape(array) != (size, size, 3):
            raise ValueError(f"{name} must be {size} x {size} x 3, got {np.shape(array)}")
    source = np.asarray(crop, np.float32) if reference is None else np.asarray(crop, np.float32) - reference
    x0, y0, x1, y1 = _footprint(alignment, out.width, out.height)
    # In bands of rows, so a face filling a 100-megapixel photo needs little memory.
    for top in range(y0, y1, PASTE_BAND):
        band = (x0, top, x1, min(top + PASTE_BAND, y1))
        weights = _weights(alignment, band)
        where = weights > 0
        if not where.any():
            continue
        back = cv2.invertAffineTransform(alignment.m)
        back[:, 2] -= (x0, top)  # into the band's own coordinates
        warped = _warp(source, back, (x1 - x0, band[3] - top))
        change = warped if reference is not None else warped - out.rgb(band)
        out.add_change(change * weights[..., None], band, where)
    return out


def debug_view(photo: Photo, faces: list[AlignedFace]) -> np.ndarray:
    """The photo (uint8 RGB) with each face's box, landmarks, crop outline and index drawn on it."""
    view = np.array(photo.rgb8(), copy=True)
    thickness = max(1, round(max(photo.width, photo.height) / 600))
    colours = [(255, 64, 64), (64, 160, 255), (255, 255, 0), (255, 64, 255), (64, 255, 64)]
    for item in faces:
        s = item.alignment.size - 0.5
        outline = item.alignment.to_photo(np.array([[-0.5, -0.5], [s, -0.5], [s, s], [-0.5, s]]))
        cv2.polylines(view, [np.rint(outline).astype(np.int32)], True, (0, 255, 255), thickness, cv2.LINE_AA)
        if item.face is None:
            continue
        x, y, w, h = item.face.box
        cv2.rectangle(view, (round(x), round(y)), (round(x + w), round(y + h)), (0, 255, 0), thickness, cv2.LINE_AA)
        radius = max(2, round(math.sqrt(item.face.area) / 40))
        for (px, py), colour in zip(item.face.landmarks, colours):
            cv2.circle(view, (round(px), round(py)), radius, colour, -1, cv2.LINE_AA)
        cv2.putText(
            view,
            str(item.index),
            (round(x), max(0, round(y) - 4 * thickness)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5 * thickness,
            (0, 255, 0),
            thickness,
            cv2.LINE_AA,
        )
    return view


def paste_faces(
    photo: Photo, alignments: Sequence[Alignment], edited: Sequence[np.ndarray], reference: Sequence[np.ndarray]
) -> Photo:
    """Each face's change (edited - reference crops, [0, 1]) pasted back, in order, into a copy of the photo."""
    out = photo
    for alignment, e, r in zip(alignments, edited, reference):
        out = paste(out, alignment, e, r, inplace=out is not photo)
    return out

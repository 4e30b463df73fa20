"""Faces as geometry: a detected Face, and its Alignment, the similarity transform that frames it as
CelebA's aligned images are framed; crops warped out of a photo.

An alignment is a 2x3 matrix M taking photo pixel coordinates to crop coordinates
(crop = M @ [x, y, 1]), with pixel centres at integers, as cv2.warpAffine reads it: the rotation,
uniform scale and translation that take the two eyes and the mouth centre closest (least squares)
to CelebA's template; bicubic, edge pixels repeated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from fadercli.media.images import Photo, centre_square, resize_square

# CelebA's template in the release's 178 x 178 crop (0-based): image-left eye, image-right eye, mouth centre.
TEMPLATE_178 = np.array([[69.745, 91.0], [107.237, 91.0], [88.432, 132.514]])


DEFAULT_SIZE = 256


# CelebA weighted its three points alike. We count the mouth centre at half (a quarter in squared
# error): the eyes, which people and the models look at first, land about twice as close to the
# template, while the mouth still steadies rotation and scale (eye landmarks are noisy, and the eyes
# of a turned head come closer together). On the test portrait: eyes 1.8 px from the template at
# 256 px instead of 3.5, the mouth 6.9 px instead of 3.4.
FIT_WEIGHTS = np.array([1.0, 1.0, 0.5])


SHRINK_BELOW = 0.5  # warps that shrink more than this are area-averaged first, against aliasing


@dataclass(frozen=True)
class Face:
    """A detected face, in photo pixels.

    landmarks: YuNet's five points (x, y): the image-left eye (the person's right), the image-right
    eye, the nose tip, the image-left mouth corner, the image-right mouth corner.
    """

    box: tuple[float, float, float, float]  # x, y, width, height
    landmarks: tuple[tuple[float, float], ...]
    score: float

    @property
    def points(self) -> np.ndarray:
        return np.array(self.landmarks, dtype=np.float64)

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


@dataclass(frozen=True)
class Alignment:
    """Where a model-sized crop sits in a photo: `matrix` takes photo to crop coordinates.

    whole: the crop is an already aligned image (--no-align): its centre square, resized, as
    `fader train` takes it; pasted back into that square without a mask.
    """

    matrix: tuple[tuple[float, float, float], tuple[float, float, float]]
    size: int
    whole: bool = False

    @property
    def m(self) -> np.ndarray:
        return np.array(self.matrix, dtype=np.float64)

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """Crop coordinates -> photo coordinates."""
        return _apply(cv2.invertAffineTransform(self.m), points)

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Photo coordinates -> crop coordinates."""
        return _apply(self.m, points)

    def scaled(self, sx: float, sy: float) -> Alignment:
        """The same crop of the photo resized by (sx, sy) (pixel centres kept: p' = (p + 0.5) s - 0.5)."""
        m = self.m
        back = np.array([[1 / sx, 0.0, 0.5 / sx - 0.5], [0.0, 1 / sy, 0.5 / sy - 0.5]])
        matrix = np.column_stack([m[:, :2] @ back[:, :2], m[:, :2] @ back[:, 2] + m[:, 2]])
        return Alignment(_as_tuple(matrix), self.size, self.whole)


def _apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A 2x3 affine matrix applied to N x 2 points."""
    return np.asarray(points, float) @ m[:, :2].T + m[:, 2]


@dataclass
class AlignedFace:
    """A face ready for the model: where it is, and its crop (size x size x 3 RGB float32 in [0, 1])."""

    index: int  # position among the photo's faces, largest first (0 for a whole-image crop)
    face: Face | None  # None for a whole-image crop
    alignment: Alignment
    crop: np.ndarray


def template(size: int) -> np.ndarray:
    """CelebA's eye and mouth-centre positions in a size x size crop (0-based pixel centres)."""
    return (TEMPLATE_178 + 0.5) * (size / 178) - 0.5


def similarity(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, translation) taking source points to
    target points, 2x3; `weights` scale each point's residual."""
    weights = np.ones(len(source)) if weights is None else weights
    rows, rhs = [], []
    for (x, y), (u, v), k in zip(np.asarray(source, float), np.asarray(target, float), weights):
        rows += [[k * x, -k * y, k, 0], [k * y, k * x, 0, k]]
        rhs += [k * u, k * v]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def _crop_matrix(landmarks: np.ndarray, size: int) -> np.ndarray:
    points = np.asarray(landmarks, float)
    source = np.stack([points[0], points[1], (points[3] + points[4]) / 2])
    return similarity(source, template(size), FIT_WEIGHTS)


def _as_tuple(m: np.ndarray) -> tuple:
    return tuple(tuple(float(v) for v in row) for row in m)


def alignment_for(face: Face, size: int = DEFAULT_SIZE) -> Alignment:
    """The CelebA framing of `face` in a size x size crop."""
    return Alignment(_as_tuple(_crop_matrix(face.points, size)), size)


def whole_image(width: int, height: int, size: int = DEFAULT_SIZE) -> Alignment:
    """An already aligned image (--no-align): its centre square (all of a square image), resized.

    The same square `fader train` takes from each training image (data.load_image), so a model sees
    the faces it is asked to edit framed as it learnt them: squashing a 178 x 218 CelebA-shaped
    image into the square instead cost 16 points of swap accuracy on toy faces (docs/experiments.md).
    """
    left, top, right, _ = centre_square(width, height)
    s = size / (right - left)
    return Alignment(((s, 0.0, (0.5 - left) * s - 0.5), (0.0, s, (0.5 - top) * s - 0.5)), size, whole=True)


def _warp(src: np.ndarray, m: np.ndarray, size: tuple[int, int], border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """cv2.warpAffine (bicubic; beyond the source, edge pixels repeated or, with BORDER_CONSTANT,
    black) that area-averages first where it shrinks a lot."""
    m = np.asarray(m, dtype=np.float64)
    fx, fy = min(1.0, math.hypot(m[0, 0], m[1, 0])), min(1.0, math.hypot(m[0, 1], m[1, 1]))
    if min(fx, fy) < SHRINK_BELOW:
        h, w = src.shape[:2]
        small = (max(1, round(w * fx)), max(1, round(h * fy)))
        src = cv2.resize(src, small, interpolation=cv2.INTER_AREA)
        d = np.array([w / small[0], h / small[1]])  # small -> original, pixel centres kept
        m = np.column_stack([m[:, :2] * d, m[:, 2] + m[:, :2] @ (0.5 * d - 0.5)])
    return cv2.warpAffine(src, m, size, flags=cv2.INTER_CUBIC, borderMode=border)


def _footprint(alignment: Alignment, width: int, height: int, margin: int = 0) -> tuple[int, int, int, int]:
    """The box x0, y0, x1, y1 of photo pixels the crop covers (plus `margin`), clipped to the photo."""
    if alignment.whole:  # exactly the square the crop is, so nothing beyond it is read or touched
        (x0, y0), (x1, y1) = np.rint(alignment.to_photo(np.array([[-0.5, -0.5], [alignment.size - 0.5] * 2])) + 0.5)
        return int(x0), int(y0), int(x1), int(y1)
    s = alignment.size - 0.5
    corners = alignment.to_photo(np.array([[-0.5, -0.5], [s, -0.5], [-0.5, s], [s, s]]))
    (x0, y0), (x1, y1) = np.floor(corners.min(axis=0)) - margin, np.ceil(corners.max(axis=0)) + margin + 1
    x0, y0 = int(min(max(x0, 0), width - 1)), int(min(max(y0, 0), height - 1))
    x1, y1 = int(max(min(x1, width), x0 + 1)), int(max(min(y1, height), y0 + 1))
    return x0, y0, x1, y1


def footprint(alignments: list[Alignment], width: int, height: int) -> tuple[int, int, int, int]:
    """The box x0, y0, x1, y1 holding every photo pixel the crops of `alignments` cover (all that
    pasting them back can change)."""
    boxes = np.array([_footprint(a, width, height) for a in alignments])
    return (*map(int, boxes[:, :2].min(axis=0)), *map(int, boxes[:, 2:].max(axis=0)))


def _shifted(m: np.ndarray, x0: float, y0: float) -> np.ndarray:
    """A photo -> crop matrix for a region of the photo starting at (x0, y0)."""
    out = np.array(m, dtype=np.float64)
    out[:, 2] += out[:, :2] @ [x0, y0]
    return out


def crop(photo: Photo, alignment: Alignment) -> np.ndarray:
    """The aligned crop: size x size x 3 float32 RGB in [0, 1]; pixels beyond the photo repeat its edge.

    A whole-image crop (--no-align) is resampled exactly as `fader train` resamples its images.
    """
    box = crop_footprint(alignment, photo.width, photo.height)
    if alignment.whole:
        x0, y0, x1, y1 = box
        square = Image.fromarray(np.ascontiguousarray(photo.rgb8()[y0:y1, x0:x1]))
        return resize_square(square, alignment.size).astype(np.float32) / 255
    size = (alignment.size, alignment.size)
    out = _warp(photo.rgb(box), _shifted(alignment.m, box[0], box[1]), size)
    return np.clip(out, 0, 1, out=out)


def crop_footprint(alignment: Alignment, width: int, height: int) -> tuple[int, int, int, int]:
    """The box x0, y0, x1, y1 of photo pixels that `crop` reads (all a paste can change lies inside
    it too): the crop's footprint and the reach of bicubic resampling around it."""
    if alignment.whole:
        return _footprint(alignment, width, height)
    m = alignment.m
    shrink = min(1.0, math.hypot(m[0, 0], m[1, 0]), math.hypot(m[0, 1], m[1, 1]))
    return _footprint(alignment, width, height, margin=math.ceil(3 / shrink))

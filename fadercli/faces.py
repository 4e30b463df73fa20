"""Faces: finding them (YuNet), aligning them as CelebA did, and pasting edits back.

Geometry: an alignment is a 2x3 matrix M taking photo pixel coordinates to crop coordinates
(crop = M @ [x, y, 1]), with pixel centres at integers, as cv2.warpAffine reads it.

Finding: YuNet finds faces from about 10 to about 250 pixels wide in its input, so a photo is
searched at a few scales, from a copy whose long side is COARSE_SIDE up to full resolution (small
photos enlarged, huge ones capped; large passes in tiles, to bound memory), and the candidates
merged. Each candidate is then looked at again, upright and framed by its own landmarks at the
size where YuNet's landmarks are best, mirrored and not (averaged: the mirror cancels YuNet's
left/right bias), until the landmarks settle. The score of that second look decides, the lower of
its last two looks: false finds (a texture seen at one scale) are rarely found again, or only
weakly, or not alike twice. Faces the second look doubts are looked at in other ways: with black
beyond the photo's edge (a face cut by the border), at half the size (blur and grain hide a face
enlarged that far), and turned a quarter either way and upside down (a face rolled past ~45
degrees, whose first landmarks are wrong).

Aligning: the similarity transform (rotation, uniform scale, translation) that takes the two eyes
and the mouth centre closest (least squares) to CelebA's template, bicubic, edge pixels repeated.

Pasting back: the change (edit minus reconstruction, or a whole crop minus the photo) is warped
into the photo at its own resolution and added under a soft elliptical mask drawn in crop space;
only pixels where the mask is above zero are touched, so all others stay bit-identical.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fadercli.errors import ModelError, NoFaceError, UsageError
from fadercli.images import Photo, centre_square, resize_square
from fadercli.limits import DEFAULT as DEFAULT_LIMITS

DEFAULT_SIZE = 256
# Faces are kept by the score of the second look (see _refine). Measured (docs/experiments.md,
# "Faces"): true faces 0.76-0.94 (cut by the border, tiny, grainy, greyscale, rolled), 0.8 and more
# but for a few percent of them; false finds on photos without a person up to 0.78.
DEFAULT_THRESHOLD = 0.75
CANDIDATE_THRESHOLD = 0.4  # first finds, which the second look confirms or drops (tiny faces: ~0.4)
MODEL_ENV = "FADER_DETECTOR_MODEL"

# CelebA's template in the release's 178 x 178 crop (0-based): image-left eye, image-right eye, mouth centre.
TEMPLATE_178 = np.array([[69.745, 91.0], [107.237, 91.0], [88.432, 132.514]])

# CelebA weighted its three points alike. We count the mouth centre at half (a quarter in squared
# error): the eyes, which people and the models look at first, land about twice as close to the
# template, while the mouth still steadies rotation and scale (eye landmarks are noisy, and the eyes
# of a turned head come closer together). On the test portrait: eyes 1.8 px from the template at
# 256 px instead of 3.5, the mouth 6.9 px instead of 3.4.
FIT_WEIGHTS = np.array([1.0, 1.0, 0.5])

COARSE_SIDE = 512  # a face filling the photo is still under YuNet's ~250 px limit at this size
FINE_PIXELS = 12e6  # the finest pass: full resolution up to 12 MP (a 6000 x 4000 photo: faces
# from ~25 px wide), which bounds the time a huge photo takes (~5 s on two cores for 24 MP)
UPSCALED_PIXELS = 4e6  # smaller photos are searched enlarged to this, for faces ~10 px tall
MAX_STEP = 4.0  # scale ratio between passes; each pass covers faces over a ~20x range of sizes
TILE = 1536  # larger passes run in overlapping tiles
TILE_OVERLAP = 160  # faces the coarser pass is too small for are under ~60 px here
REFINE_WINDOW = 320  # the upright window a candidate is looked at again in
REFINE_FACE = 224  # ... holding a CelebA-framed crop of this size (eyes ~47 px apart)
REFINE_BOX = 112  # a face's YuNet box at that size (its larger side)
REFINE_SMALL = 112  # the second look's framing for faces it misses at REFINE_FACE (see _refine)
LOOK_THRESHOLD = 0.3  # the least score a second look reports at all
SURE = 0.9  # upright faces score ~0.93 on a second look, faces seen upside down ~0.85
REFINE_ROUNDS = 4  # looks at most; measured: landmark spread over rescaled/rotated copies 13% of
REFINE_SETTLED = 0.02  # the eye distance for the first find, 6.5% after one look, 3.4% after three
MAX_CANDIDATES = 512  # first finds kept, best scores first (a photo of people has far fewer)
PASTE_BAND = 256  # rows pasted at a time
SHRINK_BELOW = 0.5  # warps that shrink more than this are area-averaged first, against aliasing

# The paste-back mask, in crop coordinates scaled to [0, 1] (see _weights): its edge stays inside
# the crop on every side, so nothing outside the crop is ever touched.
MASK_CENTRE = (0.5, 0.5)
MASK_RADII = (0.42, 0.46)
MASK_FULL = 0.75


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


# ---------------------------------------------------------------------------------------------
# Detection


def detector_model() -> Path:
    """The YuNet ONNX file: $FADER_DETECTOR_MODEL if set, else the registry's copy (fetched once)."""
    override = os.environ.get(MODEL_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ModelError(f"{MODEL_ENV}={override}: no such file")
        return path
    from fadercli import hub

    return Path(hub.fetch("yunet"))


class _Detector:
    """YuNet for one model file. A cv2 detector keeps state between calls (its input size), so
    each thread gets its own; with `parallel`, a second look's mirrored view is detected on a
    helper thread while the calling thread detects the upright one."""

    def __init__(self, model: str, parallel: bool):
        self.model = model
        self.parallel = parallel
        self._local = threading.local()

    def here(self):
        """This thread's cv2 detector."""
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = _load_detector(self.model)
        return detector


@functools.lru_cache(maxsize=8)
def _detector(model: str, parallel: bool = False) -> _Detector:
    return _Detector(model, parallel)


@functools.lru_cache(maxsize=1)
def _helper() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="fader-look")


def _load_detector(model: str):
    # OpenCV 5 warns on stderr that its new DNN engine ignores target settings: noise for our users.
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        return cv2.FaceDetectorYN.create(model, "", (320, 320), 0.5, 0.3, 5000)
    except cv2.error as e:
        message = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown error"
        raise ModelError(f"{model}: cannot load the YuNet face detector ({message})") from None
    finally:
        logging.setLogLevel(level)


def _run(detector: _Detector, bgr: np.ndarray, threshold: float) -> np.ndarray:
    """YuNet on one image: rows of x, y, w, h, 5 landmarks (x, y), score."""
    yunet = detector.here()
    yunet.setScoreThreshold(threshold)
    yunet.setInputSize((bgr.shape[1], bgr.shape[0]))
    _, found = yunet.detect(np.ascontiguousarray(bgr))
    return np.zeros((0, 15)) if found is None else found.astype(np.float64)


def _run_tiled(detector, bgr: np.ndarray, threshold: float) -> np.ndarray:
    h, w = bgr.shape[:2]
    if max(h, w) <= TILE:
        return _run(detector, bgr, threshold)
    rows = []
    stride = TILE - TILE_OVERLAP
    for y in range(0, max(h - TILE_OVERLAP, 1), stride):
        for x in range(0, max(w - TILE_OVERLAP, 1), stride):
            found = _run(detector, bgr[y : y + TILE, x : x + TILE], threshold)
            found[:, [0, 4, 6, 8, 10, 12]] += x
            found[:, [1, 5, 7, 9, 11, 13]] += y
            rows.append(found)
    return np.concatenate(rows)


def _scales(width: int, height: int) -> list[float]:
    """From a copy with COARSE_SIDE as long side to full resolution (at most FINE_PIXELS; photos
    under UPSCALED_PIXELS enlarged to that, at most twice), at most MAX_STEP apart."""
    pixels = width * height
    coarse = min(1.0, COARSE_SIDE / max(width, height))
    fine = max(min(1.0, math.sqrt(FINE_PIXELS / pixels)), min(2.0, math.sqrt(UPSCALED_PIXELS / pixels)))
    steps = math.ceil(math.log(fine / coarse) / math.log(MAX_STEP) - 1e-9)
    return [coarse * (fine / coarse) ** (k / steps) for k in range(steps + 1)] if steps > 0 else [coarse]


def _candidates(detector, bgr: np.ndarray, threshold: float) -> np.ndarray:
    h, w = bgr.shape[:2]
    rows = []
    for scale in _scales(w, h):
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if size == (w, h):
            image = bgr
        else:
            image = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        found = _run_tiled(detector, image, threshold)
        sx, sy = w / size[0], h / size[1]
        # Positions map pixel centre to pixel centre, as cv2.resize does; sizes just scale.
        found[:, [0, 4, 6, 8, 10, 12]] = (found[:, [0, 4, 6, 8, 10, 12]] + 0.5) * sx - 0.5
        found[:, [1, 5, 7, 9, 11, 13]] = (found[:, [1, 5, 7, 9, 11, 13]] + 0.5) * sy - 0.5
        found[:, [2, 3]] *= (sx, sy)
        rows.append(found)
    return _suppress(np.concatenate(rows))


def _suppress(rows: np.ndarray) -> np.ndarray:
    """Keep the best-scoring of candidates that overlap: the same face seen at two scales, or a
    face part taken for a face inside a larger one. Only the MAX_CANDIDATES best are considered, so
    that a picture made of thousands of faces costs bounded time (the pairing is quadratic)."""
    kept: list[np.ndarray] = []
    for row in rows[np.argsort(-rows[:, 14], kind="stable")[:MAX_CANDIDATES]]:
        if all(not _same_face(row[:4], k[:4]) for k in kept):
            kept.append(row)
    return np.array(kept).reshape(-1, 15)


def _same_face(a: np.ndarray, b: np.ndarray) -> bool:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return False
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union > 0.4 or inter / min(a[2] * a[3], b[2] * b[3]) > 0.7


def _mirror(rows: np.ndarray, width: int) -> np.ndarray:
    """Detections on a mirrored image, in the unmirrored one's coordinates and landmark order."""
    out = rows.copy()
    out[:, 0] = width - rows[:, 0] - rows[:, 2]
    xs = [4, 6, 8, 10, 12]
    out[:, xs] = width - 1 - rows[:, xs]
    # Mirroring swaps image-left and image-right: eyes (0, 1) and mouth corners (3, 4).
    points = out[:, 4:14].reshape(-1, 5, 2)[:, [1, 0, 2, 4, 3]]
    out[:, 4:14] = points.reshape(-1, 10)
    return out


def _nearest(found: np.ndarray, expected: np.ndarray) -> np.ndarray | None:
    """The detection whose eyes are nearest `expected`, if within half their distance."""
    if not len(found):
        return None
    error = np.linalg.norm(found[:, 4:8].reshape(-1, 2, 2) - expected, axis=2).max(axis=1)
    best = int(np.argmin(error))
    return found[best] if error[best] < 0.5 * np.linalg.norm(expected[1] - expected[0]) else None


def _look_at(detector, view: np.ndarray, expected: np.ndarray, mirrored: bool) -> np.ndarray | None:
    """The face near `expected` in a view (a row in view coordinates, or None); with `mirrored`,
    averaged with the same look at the mirrored view."""
    mirror = cv2.flip(view, 1) if mirrored else None  # view[:, ::-1], copied 20x faster than numpy does
    other = _helper().submit(_run, detector, mirror, LOOK_THRESHOLD) if mirrored and detector.parallel else None
    looks = [_nearest(_run(detector, view, LOOK_THRESHOLD), expected)]
    if mirrored:
        flipped = other.result() if other is not None else _run(detector, mirror, LOOK_THRESHOLD)
        looks.append(_nearest(_mirror(flipped, view.shape[1]), expected))
    seen = [look for look in looks if look is not None]
    return np.mean(seen, axis=0) if seen else None


def _leaves_photo(window: np.ndarray, size: int, width: int, height: int) -> bool:
    corners = _apply(cv2.invertAffineTransform(window), np.array([[0, 0], [size, 0], [0, size], [size, size]]) - 0.5)
    return bool((corners < -0.5).any() or (corners[:, 0] > width - 0.5).any() or (corners[:, 1] > height - 0.5).any())


def _look(
    detector, bgr: np.ndarray, window: np.ndarray, expected: np.ndarray, mirrored: bool, size: int = REFINE_WINDOW
) -> np.ndarray | None:
    """Detect in a size x size view of the photo (`window`: photo -> view) and keep the face whose
    eyes are nearest `expected` (view coordinates), if within half their distance; with `mirrored`,
    average with the same look at the mirrored view. A detection row in photo coordinates, or None.

    Where the view reaches beyond the photo, its edge pixels repeated there streak a face cut by
    the border, and YuNet doubts it (a first find of 0.9 looked at again at 0.5 to 0.7): a doubtful
    look is also taken with black beyond the photo, as YuNet sees a photo's edge, and the surer score kept.
    The landmarks stay those seen with the edge repeated, which place an eye beyond the border better.
    """
    found = _look_at(detector, _warp(bgr, window, (size, size)), expected, mirrored)
    unsure = found is None or found[14] < SURE
    if unsure and _leaves_photo(window, size, bgr.shape[1], bgr.shape[0]):
        black = _look_at(detector, _warp(bgr, window, (size, size), cv2.BORDER_CONSTANT), expected, mirrored)
        if black is not None and (found is None or black[14] > found[14]):
            found = black if found is None else np.concatenate([found[:14], black[14:]])
    if found is None:
        return None
    x, y, w, h = found[:4]
    points = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h], *found[4:14].reshape(5, 2)])
    points = _apply(cv2.invertAffineTransform(window), points)
    (x0, y0), (x1, y1) = points[:4].min(axis=0), points[:4].max(axis=0)
    return np.concatenate([[x0, y0, x1 - x0, y1 - y0], points[4:].ravel(), [found[14]]])


def _look_again(detector, bgr: np.ndarray, row: np.ndarray, face: int = REFINE_FACE) -> np.ndarray | None:
    """Look at a face upright and CelebA-framed by its landmarks (a face x face crop in a window
    REFINE_WINDOW / REFINE_FACE times larger), mirrored and not."""
    size = round(face * REFINE_WINDOW / REFINE_FACE)
    window = _crop_matrix(row[4:14].reshape(5, 2), face)
    window[:, 2] += (size - face) / 2
    expected = template(face)[:2] + (size - face) / 2
    return _look(detector, bgr, window, expected, mirrored=True, size=size)


def _look_turned(detector, bgr: np.ndarray, row: np.ndarray) -> np.ndarray | None:
    """YuNet boxes a face rolled by more than ~45 degrees but misplaces its landmarks: look at the
    box turned a quarter either way and upside down, and keep the surest upright face."""
    x, y, w, h = row[:4]
    scale = REFINE_BOX / max(w, h)
    # Where the eyes of an upright face sit in its YuNet box (measured on the test portrait).
    expected = REFINE_WINDOW / 2 + REFINE_BOX * np.array([[-0.24, -0.14], [0.24, -0.14]])
    found = []
    for angle in (90, -90, 180):
        window = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), angle, scale)
        window[:, 2] += REFINE_WINDOW / 2 - np.array([x + w / 2, y + h / 2])
        look = _look(detector, bgr, window, expected, mirrored=False)
        if look is not None:
            found.append(look)
    return max(found, key=lambda r: r[14], default=None)


def _surer(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Whether look b is surer than look a (None: not found)."""
    return b is not None and (a is None or b[14] > a[14])


def _refine(detector, bgr: np.ndarray, row: np.ndarray) -> np.ndarray | None:
    """Look again until the landmarks settle: each look frames the face by the last one's landmarks,
    so the result no longer depends on the scale and roll the face was first found at. None if the
    face cannot be found again, or is lost on a later look: most false detections are not found
    again (a texture seen at one scale only). The score is the lower of the last two looks': a face
    scores alike on consecutive looks, while a false find's score wanders from look to look."""
    face = REFINE_FACE
    looked = _look_again(detector, bgr, row)
    if looked is None or looked[14] < SURE:
        # Blur and grain hide a face enlarged that much (measured: an old, soft, grainy photo's face
        # found at 0.85 first, and not at all at REFINE_FACE, is found at 0.8-0.9 at half that).
        small = _look_again(detector, bgr, row, REFINE_SMALL)
        if _surer(looked, small):
            looked, face = small, REFINE_SMALL
    if looked is None or looked[14] < SURE:
        # Perhaps rolled far, or upside down (which YuNet also takes for a face, less surely).
        turned = _look_turned(detector, bgr, row)
        turned = None if turned is None else _look_again(detector, bgr, turned)
        if _surer(looked, turned):
            looked, face = turned, REFINE_FACE
    if looked is None:
        return None
    previous = looked[14]
    for _ in range(REFINE_ROUNDS - 1):
        again = _look_again(detector, bgr, looked, face)
        if again is None:
            return None
        moved = np.abs(again[4:14] - looked[4:14]).max()
        previous, looked = looked[14], again
        if moved < REFINE_SETTLED * np.linalg.norm(again[4:6] - again[6:8]):
            break
    looked[14] = min(looked[14], previous)
    return looked


def find_faces(
    image: Photo | np.ndarray,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    model: str | os.PathLike | None = None,
    parallel: bool = False,
    max_faces: int = DEFAULT_LIMITS.max_faces,
) -> list[Face]:
    """The faces in a photo (a Photo, or an H x W x 3 uint8 RGB array), largest first: at most
    `max_faces` of them, so that a crowd (or a picture made of faces) costs bounded time and memory.

    threshold: YuNet's confidence (0..1) a face needs on the second, upright look; lower finds more,
    and more false ones. parallel: second looks detect their mirrored view on a helper thread (the
    same faces, sooner where a core is free).
    """
    if not 0 < threshold < 1:
        raise UsageError(f"the detection threshold must be between 0 and 1, got {threshold}")
    rgb = image.rgb8() if isinstance(image, Photo) else np.asarray(image)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # rgb[..., ::-1], copied 40x faster than numpy does
    detector = _detector(str(model or detector_model()), parallel)
    candidates = _candidates(detector, bgr, min(threshold, CANDIDATE_THRESHOLD))
    if len(candidates) > 2 * max_faces:  # each costs up to REFINE_ROUNDS looks: keep the largest, in order
        candidates = candidates[np.sort(np.argsort(-candidates[:, 2] * candidates[:, 3], kind="stable")[: 2 * max_faces])]
    refined = [_refine(detector, bgr, candidate) for candidate in candidates]
    refined = np.array([r for r in refined if r is not None and r[14] >= threshold]).reshape(-1, 15)
    faces = []
    # Two candidates (say, a face and a part of it) can settle on the same face.
    for row in _suppress(refined):
        x, y, w, h = (float(v) for v in row[:4])
        landmarks = tuple((float(px), float(py)) for px, py in row[4:14].reshape(5, 2))
        faces.append(Face((x, y, w, h), landmarks, float(row[14])))
    faces.sort(key=lambda f: -f.area)
    return faces[:max_faces]


# ---------------------------------------------------------------------------------------------
# Alignment


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


# ---------------------------------------------------------------------------------------------
# Paste-back


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


# ---------------------------------------------------------------------------------------------
# Choosing faces, and the whole way from photo to crops


def parse_face_choice(text: str) -> str | int:
    """`--face`: "all", "largest", or an index into the faces sorted largest first (0 = largest)."""
    value = text.strip().lower()
    if value in ("all", "largest"):
        return value
    if value.isascii() and value.isdigit() and len(value) <= 6:  # "²".isdigit() too, and int() refuses it
        return int(value)
    raise UsageError(f"--face must be all, largest or a face index (0 = the largest), got {text!r}")


def select_faces(faces: list[Face], choice: str | int, where: str = "the photo") -> list[tuple[int, Face]]:
    """The chosen faces with their indices; NoFaceError when there is none to choose."""
    if not faces:
        raise NoFaceError(f"no face found in {where}")
    if choice == "all":
        return list(enumerate(faces))
    if choice == "largest":
        return [(0, faces[0])]
    if not 0 <= choice < len(faces):
        raise NoFaceError(f"no face {choice} in {where}: {len(faces)} found (0 = the largest)", code="no_such_face")
    return [(choice, faces[choice])]


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
            view, str(item.index), (round(x), max(0, round(y) - 4 * thickness)),
            cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thickness, (0, 255, 0), thickness, cv2.LINE_AA,
        )
    return view


# ---------------------------------------------------------------------------------------------
# Following faces from one video frame to the next


def follow(
    image: Photo | np.ndarray, faces: list[Face], *, model: str | os.PathLike | None = None, parallel: bool = False
) -> list[Face | None]:
    """Each face looked at once more where it was: find_faces' second look (upright, framed by the
    face's landmarks, mirrored and not) in `image`, say the next frame of a video; None where no
    face is found there. A small fraction of find_faces' time: no search over the whole image.
    `parallel` as for find_faces."""
    rgb = image.rgb8() if isinstance(image, Photo) else np.asarray(image)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    detector = _detector(str(model or detector_model()), parallel)
    found: list[Face | None] = []
    for face in faces:
        row = _look_again(detector, bgr, np.concatenate([face.box, face.points.ravel(), [face.score]]))
        if row is None:
            found.append(None)
            continue
        landmarks = tuple((float(px), float(py)) for px, py in row[4:14].reshape(5, 2))
        found.append(Face(tuple(float(v) for v in row[:4]), landmarks, float(row[14])))
    return found

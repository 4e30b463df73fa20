"""Finding faces in a photo with YuNet, and following them from one video frame to the next.

 YuNet finds faces from about 10 to about 250 pixels wide in its input, so a photo is
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

"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from fadercli.errors import ModelError, UsageError
from fadercli.faces.geometry import Face, _apply, _crop_matrix, _warp, template
from fadercli.limits import DEFAULT as DEFAULT_LIMITS
from fadercli.media.images import Photo
from fadercli.progress import checkpoint

# Faces are kept by the score of the second look (see _refine). Measured (docs/experiments.md,
# "Faces"): true faces 0.76-0.94 (cut by the border, tiny, grainy, greyscale, rolled), 0.8 and more
# but for a few percent of them; false finds on photos without a person up to 0.78.
DEFAULT_THRESHOLD = 0.75
CANDIDATE_THRESHOLD = 0.4  # first finds, which the second look confirms or drops (tiny faces: ~0.4)
MODEL_ENV = "FADER_DETECTOR_MODEL"


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
RESIZE_MARGIN = 0.05  # a face followed (follow) changes its look's size only for a look this much surer:
# one that scores alike at both keeps its framing, since YuNet's landmarks shift with it
LOOK_THRESHOLD = 0.3  # the least score a second look reports at all
NEAR = 0.5  # a look keeps the face whose eyes are within this x their distance of where it looked
SURE = 0.9  # upright faces score ~0.93 on a second look, faces seen upside down ~0.85
REFINE_ROUNDS = 4  # looks at most; measured: landmark spread over rescaled/rotated copies 13% of
REFINE_SETTLED = 0.02  # the eye distance for the first find, 6.5% after one look, 3.4% after three
MAX_CANDIDATES = 512  # first finds kept, best scores first (a photo of people has far fewer)


def detector_model() -> Path:
    """The YuNet ONNX file: $FADER_DETECTOR_MODEL if set, else the registry's copy (fetched once)."""
    override = os.environ.get(MODEL_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ModelError(f"{MODEL_ENV}={override}: no such file")
        return path
    from fadercli.weights import hub

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
            checkpoint()
            found[:, [0, 4, 6, 8, 10, 12]] += x
            found[:, [1, 5, 7, 9, 11, 13]] += y
            rows.append(found)
    return np.concatenate(rows)


def _scales(width: int, height: int, enlarge: bool = True) -> list[float]:
    """From a copy with COARSE_SIDE as long side to full resolution (at most FINE_PIXELS; with
    `enlarge`, photos under UPSCALED_PIXELS enlarged to that, at most twice), at most MAX_STEP apart."""
    pixels = width * height
    coarse = min(1.0, COARSE_SIDE / max(width, height))
    fine = min(1.0, math.sqrt(FINE_PIXELS / pixels))
    if enlarge:
        fine = max(fine, min(2.0, math.sqrt(UPSCALED_PIXELS / pixels)))
    steps = math.ceil(math.log(fine / coarse) / math.log(MAX_STEP) - 1e-9)
    return [coarse * (fine / coarse) ** (k / steps) for k in range(steps + 1)] if steps > 0 else [coarse]


def _candidates(detector, bgr: np.ndarray, threshold: float, enlarge: bool) -> np.ndarray:
    h, w = bgr.shape[:2]
    rows = []
    for scale in _scales(w, h, enlarge):
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
        checkpoint()
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


def _nearest(found: np.ndarray, expected: np.ndarray, reach: float = NEAR) -> np.ndarray | None:
    """The detection whose eyes are nearest `expected`, if within `reach` times their distance."""
    if not len(found):
        return None
    error = np.linalg.norm(found[:, 4:8].reshape(-1, 2, 2) - expected, axis=2).max(axis=1)
    best = int(np.argmin(error))
    return found[best] if error[best] < reach * np.linalg.norm(expected[1] - expected[0]) else None


def _look_at(
    detector, view: np.ndarray, expected: np.ndarray, mirrored: bool, reach: float = NEAR
) -> np.ndarray | None:
    """The face near `expected` in a view (a row in view coordinates, or None); with `mirrored`,
    averaged with the same look at the mirrored view."""
    mirror = cv2.flip(view, 1) if mirrored else None  # view[:, ::-1], copied 20x faster than numpy does
    other = _helper().submit(_run, detector, mirror, LOOK_THRESHOLD) if mirrored and detector.parallel else None
    looks = [_nearest(_run(detector, view, LOOK_THRESHOLD), expected, reach)]
    if mirrored:
        flipped = other.result() if other is not None else _run(detector, mirror, LOOK_THRESHOLD)
        looks.append(_nearest(_mirror(flipped, view.shape[1]), expected, reach))
    seen = [look for look in looks if look is not None]
    return np.mean(seen, axis=0) if seen else None


def _leaves_photo(window: np.ndarray, size: int, width: int, height: int) -> bool:
    corners = _apply(cv2.invertAffineTransform(window), np.array([[0, 0], [size, 0], [0, size], [size, size]]) - 0.5)
    return bool((corners < -0.5).any() or (corners[:, 0] > width - 0.5).any() or (corners[:, 1] > height - 0.5).any())


def _look(
    detector,
    bgr: np.ndarray,
    window: np.ndarray,
    expected: np.ndarray,
    mirrored: bool,
    size: int = REFINE_WINDOW,
    reach: float = NEAR,
) -> np.ndarray | None:
    """Detect in a size x size view of the photo (`window`: photo -> view) and keep the face whose
    eyes are nearest `expected` (view coordinates), if within `reach` times their distance; with `mirrored`,
    average with the same look at the mirrored view. A detection row in photo coordinates, or None.

    Where the view reaches beyond the photo, its edge pixels repeated there streak a face cut by
    the border, and YuNet doubts it (a first find of 0.9 looked at again at 0.5 to 0.7): a doubtful
    look is also taken with black beyond the photo, as YuNet sees a photo's edge, and the surer score kept.
    The landmarks stay those seen with the edge repeated, which place an eye beyond the border better.
    """
    found = _look_at(detector, _warp(bgr, window, (size, size)), expected, mirrored, reach)
    unsure = found is None or found[14] < SURE
    if unsure and _leaves_photo(window, size, bgr.shape[1], bgr.shape[0]):
        black = _look_at(detector, _warp(bgr, window, (size, size), cv2.BORDER_CONSTANT), expected, mirrored, reach)
        if black is not None and (found is None or black[14] > found[14]):
            found = black if found is None else np.concatenate([found[:14], black[14:]])
    if found is None:
        return None
    x, y, w, h = found[:4]
    points = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h], *found[4:14].reshape(5, 2)])
    points = _apply(cv2.invertAffineTransform(window), points)
    (x0, y0), (x1, y1) = points[:4].min(axis=0), points[:4].max(axis=0)
    return np.concatenate([[x0, y0, x1 - x0, y1 - y0], points[4:].ravel(), [found[14]]])


def _look_again(
    detector, bgr: np.ndarray, row: np.ndarray, face: int = REFINE_FACE, reach: float = NEAR
) -> np.ndarray | None:
    """Look at a face upright and CelebA-framed by its landmarks (a face x face crop in a window
    REFINE_WINDOW / REFINE_FACE times larger), mirrored and not."""
    size = round(face * REFINE_WINDOW / REFINE_FACE)
    window = _crop_matrix(row[4:14].reshape(5, 2), face)
    window[:, 2] += (size - face) / 2
    expected = template(face)[:2] + (size - face) / 2
    return _look(detector, bgr, window, expected, mirrored=True, size=size, reach=reach)


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
    enlarge: bool = True,
) -> list[Face]:
    """The faces in a photo (a Photo, or an H x W x 3 uint8 RGB array), largest first: at most
    `max_faces` of them, so that a crowd (or a picture made of faces) costs bounded time and memory.

    threshold: YuNet's confidence (0..1) a face needs on the second, upright look; lower finds more,
    and more false ones. parallel: second looks detect their mirrored view on a helper thread (the
    same faces, sooner where a core is free). enlarge: a photo under 4 MP is also searched enlarged
    (faces down to ~5 px tall in it); without, at its own pixels and coarser only (faces from ~10 px:
    a camera's frame, whose sender can send more pixels instead, in a fraction of the time).
    """
    if not 0 < threshold < 1:
        raise UsageError(f"the detection threshold must be between 0 and 1, got {threshold}")
    rgb = image.rgb8() if isinstance(image, Photo) else np.asarray(image)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # rgb[..., ::-1], copied 40x faster than numpy does
    detector = _detector(str(model or detector_model()), parallel)
    candidates = _candidates(detector, bgr, min(threshold, CANDIDATE_THRESHOLD), enlarge)
    if len(candidates) > 2 * max_faces:  # each costs up to REFINE_ROUNDS looks: keep the largest, in order
        candidates = candidates[
            np.sort(np.argsort(-candidates[:, 2] * candidates[:, 3], kind="stable")[: 2 * max_faces])
        ]
    refined = []
    for candidate in candidates:
        refined.append(_refine(detector, bgr, candidate))
        checkpoint()
    refined = np.array([r for r in refined if r is not None and r[14] >= threshold]).reshape(-1, 15)
    # Two candidates (say, a face and a part of it) can settle on the same face.
    faces = [_as_face(row) for row in _suppress(refined)]
    faces.sort(key=lambda f: -f.area)
    return faces[:max_faces]


def follow(
    image: Photo | np.ndarray,
    faces: list[Face],
    *,
    sizes: Sequence[int | None] | None = None,
    reach: float = NEAR,
    model: str | os.PathLike | None = None,
    parallel: bool = False,
) -> list[tuple[Face | None, int]]:
    """Each face looked at once more where it was: find_faces' second look (upright, framed by the
    face's landmarks, mirrored and not) in `image`, say the next frame of a video. A small fraction of
    find_faces' time: no search over the whole image. `parallel` as for find_faces.

    A look is framed at the size its face was last found at (`sizes`, as returned here; None: the
    size find_faces looks at first); where it is unsure there (under SURE, or nothing found), also
    at the other size find_faces looks at, and that look is kept if clearly surer: a small or soft
    face, which enlarging hides, is followed as the detector found it. A face is found where its eyes
    are within `reach` times their distance of where they were. Per face: the face found (None: not
    there) and the size to look at it next time."""
    rgb = image.rgb8() if isinstance(image, Photo) else np.asarray(image)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    detector = _detector(str(model or detector_model()), parallel)
    found: list[tuple[Face | None, int]] = []
    for face, size in zip(faces, sizes or [None] * len(faces)):
        row = np.concatenate([face.box, face.points.ravel(), [face.score]])
        size = size or REFINE_FACE
        looked = _look_again(detector, bgr, row, size, reach)
        if looked is None or looked[14] < SURE:
            other = REFINE_SMALL if size == REFINE_FACE else REFINE_FACE
            again = _look_again(detector, bgr, row, other, reach)
            if again is not None and (looked is None or again[14] > looked[14] + RESIZE_MARGIN):
                looked, size = again, other
        found.append((None if looked is None else _as_face(looked), size))
    return found


def _as_face(row: np.ndarray) -> Face:
    landmarks = tuple((float(px), float(py)) for px, py in row[4:14].reshape(5, 2))
    return Face(tuple(float(v) for v in row[:4]), landmarks, float(row[14]))

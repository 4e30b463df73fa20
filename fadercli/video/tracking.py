"""Faces followed across the frames of a clip, their landmarks smoothed over time.

Following (`Tracker`, one frame at a time, in the picture as displayed): every tracked face gets
one quick second look where it was (faces.follow), framed as the last look was until the face
moves, then where it will be at its speed; a full detection (faces.find_faces, the followed faces
blanked out) runs on the first frame, every DETECT_EVERY frames, on a scene cut and when a
tracked face is missed. Detections are matched to tracks by box overlap; one that matches none
starts a track, which is then followed back through the last few frames (kept for that), so a
face that walks in is edited from the frame it was first seen. A track missed for more than
MAX_GAP_SECONDS ends; a scene cut ends them all. Each track keeps its landmarks and a few crops spread over its frames,
from which the face's own attribute values are estimated once for the whole track.

Smoothing (`trajectory`): short gaps are bridged by interpolating the landmarks, then a One Euro
filter (Casiez et al., CHI 2012: a low-pass filter whose cutoff rises with speed) is run forwards
and backwards and the two averaged, so that a still face keeps a still crop and a moving one is
followed without the lag a one-way filter has. Each frame gets a weight for the edit: it fades in
and out over FADE_SECONDS where a face appears or is lost, instead of popping, but not at a scene
cut or at the clip's ends, where the face appears or goes with the picture.

Each look is framed at the size its face was last found at (faces.follow): a small or soft face,
which YuNet loses when enlarged to the usual framing, is followed at the smaller framing the
detector found it at (docs/experiments.md, "Small faces in a camera").

A camera's frames (video/live.py) are followed by the same Tracker in `stream` mode (nothing
followed back: those frames are shown already; full detections at the frame's own pixels, not
enlarged, and with `beside`, on another thread: a frame never waits for one, and its faces join
the tracks at the first frame after it is done) and smoothed forwards only (`OneEuro`, one frame
at a time), since what comes next is not known yet.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np

from fadercli import faces as facelib
from fadercli.media.images import from_array, to_uint8

DETECT_EVERY = 10  # frames between full detections (a new face is followed back over them)
MISSED_EVERY = 3  # ... or this many, when a look has just missed a face (a face found and lost in turn)
MAX_GAP_SECONDS = 0.5  # a face missed for longer ends its track
BRIDGE_SECONDS = 0.1  # gaps up to this long are bridged (a missed look); longer ones fade out and in
FADE_SECONDS = 0.25
MIN_FRAMES = 3  # shorter tracks are dropped: a face seen in one or two frames would flash
# A track shorter than this whose looks are mostly unsure (YuNet's second-look score below faces.SURE)
# is dropped as well: a texture taken for a face for a few frames (faces score 0.91-0.95 there).
UNSURE_SECONDS = 1.0
RECENT_BYTES = 200e6  # frames kept to follow new faces back in (4K: 8 frames)
MASK_MARGIN = 0.1  # tracked faces are blanked out for a full detection with this margin (x the box)
# A second try looks this far (x the eye distance) from where it looks, about as far as the look's
# window reaches: for a face a detection beside the stream found frames before, or where a moving
# face's speed took it when the look framed for a still one missed it.
CATCH_UP = 1.5
SAME_FACE = 0.3  # box overlap (intersection over union) that matches a detection to a track
DUPLICATE = 0.5  # two tracks overlapping this much follow the same face: the younger one ends
REFRAME = 0.1  # a look finding the face this far (x the eye distance) from the first look so framed reframes the next
SAMPLES = 8  # crops kept per track: between SAMPLES and 2 x SAMPLES, spread over its frames
LIVE_HISTORY = 64  # looks a live track keeps (its median size and sureness are over these)
# One Euro filter, in face sizes (the box's longer side) and seconds. A still face's landmark
# jitter is cut below MIN_CUTOFF Hz; a face moving at v face sizes per second, below
# MIN_CUTOFF + BETA * v Hz.
MIN_CUTOFF = 0.3
BETA = 4.0
D_CUTOFF = 1.0
# Scene cuts: colour histograms of a thumbnail that differ this much (half the L1 distance, 0..1).
CUT_THUMB = (64, 36)
CUT_DISTANCE = 0.4


@dataclass
class Track:
    """One face followed through a clip: where it was found (frame numbers and YuNet-style rows of
    box, five landmarks and score, in the displayed picture) and a few crops of it."""

    id: int
    frames: list[int] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    samples: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> uint8 crop
    hard_start: bool = False  # began on the first frame or at a scene cut: no fade in
    hard_end: bool = False  # ended at a scene cut or the clip's end: no fade out
    misses: int = 0  # looks in a row that did not find it
    missed: int = 0  # looks that did not find it, in all
    stride: int = 1
    framing: np.ndarray | None = None  # the landmarks the next look is framed by
    anchor: np.ndarray | None = None  # what the first look with that framing found
    look_size: int | None = None  # the size the last look found it at (faces.follow)

    def next_look(self) -> facelib.Face:
        """Where to look for the face next: framed as the last look was, until the face has moved.
        YuNet's landmarks shift by a few percent of the eye distance with the slightest change of
        framing (and sit that far from it), so framing each look by the last one's landmarks makes
        a still face's wander: docs/experiments.md, "Following faces"."""
        row = self.rows[-1].copy()
        row[4:14] = self.framing
        return _face(row)

    def moved_on(self, frame: int) -> facelib.Face:
        """Where the face would be in `frame` had it kept the speed of its last two looks: where a
        look that missed it (framed for a still face) looks again."""
        row = self.rows[-1].copy()
        if len(self.frames) > 1:
            row[4:14] += (
                (row[4:14] - self.rows[-2][4:14]) * (frame - self.frames[-1]) / (self.frames[-1] - self.frames[-2])
            )
        return _face(row)

    @property
    def unsure(self) -> bool:
        """Whether its looks are mostly unsure (a median score below faces.SURE)."""
        return bool(self.rows) and np.median([r[14] for r in self.rows]) < facelib.SURE

    @property
    def size(self) -> float:
        """The median of the box's longer side: what `--face largest` compares."""
        return float(np.median([max(r[2], r[3]) for r in self.rows]))

    def add(self, frame: int, row: np.ndarray) -> None:
        self.frames.append(frame)
        self.rows.append(row)
        self.misses = 0
        points = row[4:14]
        if self.framing is None:
            self.framing = points.copy()
        elif self.anchor is None:
            self.anchor = points.copy()
        elif _moved(points, self.anchor):
            # Moved: reframe where it will be next if it keeps its speed (a face crossing the picture
            # stays framed); the next look anchors.
            step = points - self.rows[-2][4:14] if len(self.frames) > 1 and self.frames[-2] == frame - 1 else 0
            self.framing, self.anchor = points + step, None

    def prepend(self, frame: int, row: np.ndarray) -> None:
        self.frames.insert(0, frame)
        self.rows.insert(0, row)

    def due(self, frame: int) -> bool:
        """Whether a crop of this frame is wanted (every `stride`-th frame of the track)."""
        return (frame - self.frames[0]) % self.stride == 0

    def keep(self, frame: int, crop: np.ndarray) -> None:
        """Keep a crop; past 2 x SAMPLES, every other one goes, so they stay spread over the track."""
        self.samples[frame] = crop
        if len(self.samples) > 2 * SAMPLES:
            self.stride *= 2
            start = min(self.samples)
            self.samples = {f: c for f, c in self.samples.items() if (f - start) % self.stride == 0}


def scale_points(points: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Positions (x, y, x, y, ...) in a picture scaled sx, sy times, pixel centre to pixel centre
    as cv2.resize maps them."""
    xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return ((xy + 0.5) * (sx, sy) - 0.5).reshape(np.shape(points))


def _scale_row(row: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """A YuNet-style row (box, landmarks, score) in a picture scaled sx, sy times."""
    out = np.array(row, dtype=np.float64)
    out[:2], out[2:4], out[4:14] = scale_points(out[:2], sx, sy), out[2:4] * (sx, sy), scale_points(out[4:14], sx, sy)
    return out


def _moved(points: np.ndarray, reference: np.ndarray) -> bool:
    """Whether landmarks are further than REFRAME x the eye distance from others: a face that moved."""
    return bool(np.abs(points - reference).max() > REFRAME * np.hypot(*(points[2:4] - points[0:2])))


def _alpha(dt: float, cutoff: float | np.ndarray) -> float | np.ndarray:
    """The smoothing factor of a first-order low-pass filter at `cutoff` Hz, sampled every dt seconds."""
    return 1 / (1 + 1 / (2 * math.pi * cutoff * dt))


class OneEuro:
    """The One Euro filter (Casiez et al., CHI 2012), one sample at a time: a low-pass filter whose
    cutoff rises with the signal's speed. `scale` is the signal's unit for that speed (a face's
    size), so that its cutoffs are those of a signal measured in face sizes."""

    def __init__(self) -> None:
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | float = 0.0
        self.time = 0.0

    def __call__(self, x: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        if self.value is None:
            self.value, self.speed, self.time = np.array(x, dtype=np.float64), np.zeros(np.shape(x)), t
            return self.value
        dt = max(t - self.time, 1e-6)
        self.speed = self.speed + _alpha(dt, D_CUTOFF) * ((x - self.value) / dt - self.speed)
        self.value = self.value + _alpha(dt, MIN_CUTOFF + BETA * np.abs(self.speed) / scale) * (x - self.value)
        self.time = t
        return self.value


def one_euro(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The One Euro filter along axis 0 of x (n, d), sampled at times t (seconds)."""
    step = OneEuro()
    return np.stack([step(x[i], t[i]) for i in range(len(x))])


def _row(face: facelib.Face) -> np.ndarray:
    return np.concatenate([face.box, face.points.ravel(), [face.score]])


def _row_at(track: Track, frame: int) -> np.ndarray | None:
    i = bisect.bisect_left(track.frames, frame)
    return track.rows[i] if i < len(track.frames) and track.frames[i] == frame else None


def _face(row: np.ndarray) -> facelib.Face:
    landmarks = tuple((float(x), float(y)) for x, y in row[4:14].reshape(5, 2))
    return facelib.Face(tuple(float(v) for v in row[:4]), landmarks, float(row[14]))


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x, y, w, h boxes."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return float(inter / (a[2] * a[3] + b[2] * b[3] - inter))


class SceneCuts:
    """Says whether a frame starts a new shot: its colours differ from the previous frame's as a
    cut's do (a pan or a moving face keeps the colours; a cut changes them)."""

    def __init__(self) -> None:
        self.previous: np.ndarray | None = None

    def __call__(self, rgb: np.ndarray) -> bool:
        thumb = cv2.resize(rgb, CUT_THUMB, interpolation=cv2.INTER_AREA)
        hist = np.stack([np.bincount(thumb[..., c].ravel() >> 4, minlength=16) for c in range(3)]) / thumb[..., 0].size
        previous, self.previous = self.previous, hist
        return previous is not None and 0.5 * np.abs(hist - previous).sum(axis=1).mean() > CUT_DISTANCE


@functools.lru_cache(maxsize=1)
def detections() -> Executor:
    """The thread the full detections of live streams run on, beside their frames (one for every
    stream in a process: a detection waits for another stream's at worst, and a stream asks for
    none while its last one runs). At the frames' own priority: a stream shows no face until its
    first detection is done, and new faces none until theirs."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="fader-detect")


class Tracker:
    """Follows faces frame by frame (call `step` for every frame, then `finish`)."""

    def __init__(
        self,
        *,
        fps: float,
        threshold: float,
        crop_size: int,
        on_end: Callable[[Track], None] | None = None,
        stream: bool = False,
        beside: Executor | None = None,
    ):
        """`on_end` is handed each track worth keeping as it ends (its crops can then be let go).
        `stream`: frames are shown as they come (a camera), so nothing is followed back, an ended
        track is only handed to `on_end`, a track keeps only its last LIVE_HISTORY looks, and full
        detections search the frame at its own pixels (not enlarged: the sender can send more).
        `beside` (streams): full detections run there, and their faces join at the first frame
        after they are done (looked for in that frame), so that no frame waits for one."""
        self.threshold = threshold
        self.fps = fps
        self.crop_size = crop_size
        self.on_end = on_end
        self.stream = stream
        self.beside = beside
        self.detecting: tuple[int, int, Future] | None = None  # a detection beside: frame, shot start, faces
        self.max_misses = max(1, round(MAX_GAP_SECONDS * fps))
        self.cuts = SceneCuts()
        self.live: list[Track] = []
        self.ended: list[Track] = []
        self.recent: deque[tuple[int, np.ndarray]] | None = None  # the frames since the last full detection
        self.last_full = -DETECT_EVERY
        self.shot_start = 0
        self.next_id = 0

    def step(self, t: int, rgb: np.ndarray) -> None:
        """One frame (H x W x 3 uint8 RGB, as displayed), t counting from 0."""
        if self.recent is None:  # as many as DETECT_EVERY frames, in at most RECENT_BYTES
            kept = 0 if self.stream else max(1, min(DETECT_EVERY, RECENT_BYTES // rgb.nbytes))
            self.recent = deque(maxlen=int(kept))
        cut = self.cuts(rgb)
        if cut:
            self._end(self.live, hard=True)
            self.recent.clear()
            self.shot_start = t
        missed = False
        if self.live:
            looks = [tr.next_look() for tr in self.live]
            found = facelib.follow(rgb, looks, sizes=[tr.look_size for tr in self.live], parallel=True)
            lost = [k for k, (face, _) in enumerate(found) if face is None or face.score < self.threshold]
            if lost:  # a small face moving fast can leave the framing a still face keeps: look where it went
                again = [self.live[k] for k in lost]
                retried = facelib.follow(
                    rgb,
                    [tr.moved_on(t) for tr in again],
                    sizes=[found[k][1] for k in lost],
                    reach=CATCH_UP,
                    parallel=True,
                )
                for k, look in zip(lost, retried):
                    found[k] = look
            for track, (face, size) in zip(self.live, found):
                track.look_size = size
                if face is not None and face.score >= self.threshold:
                    track.add(t, _row(face))
                else:
                    track.misses += 1
                    track.missed += 1
                    missed |= track.misses == 1
        if self.detecting is not None and self.detecting[2].done():
            seen, shot, faces = self.detecting
            self.detecting = None
            if shot == self.shot_start:
                self._match(t, rgb, faces.result(), seen)
            else:  # a detection of the shot before a cut: the new shot's is due at once
                self.last_full = -DETECT_EVERY
        if cut or t - self.last_full >= (MISSED_EVERY if missed else DETECT_EVERY):
            untracked = self._untracked(t, rgb)
            if self.beside is None:
                self.last_full = t
                self._match(t, rgb, self._detect(untracked, parallel=True), t)
            elif self.detecting is None:
                self.last_full = t
                picture = untracked.copy() if untracked is rgb else untracked  # the caller may reuse its frame
                self.detecting = (t, self.shot_start, self.beside.submit(self._detect, picture, parallel=False))
        self._drop_duplicates(t)
        # Lost for too long; or unsure, and lost more often than found (a texture, not a face).
        self._end(
            [
                tr
                for tr in self.live
                if tr.misses > self.max_misses or (tr.missed > max(len(tr.frames), 3) and tr.unsure)
            ],
            hard=False,
        )
        photo = None
        for track in self.live:
            if track.frames[-1] == t and track.due(t):
                photo = from_array(rgb) if photo is None else photo
                self._sample(track, t, track.rows[-1], photo)
            if self.stream and len(track.frames) > 2 * LIVE_HISTORY:  # misses counted at the same rate
                track.missed = track.missed * LIVE_HISTORY // len(track.frames)
                del track.frames[:-LIVE_HISTORY], track.rows[:-LIVE_HISTORY]
        self.recent.append((t, rgb))

    def rescale(self, sx: float, sy: float) -> None:
        """The stream's frames are now sx, sy times as large (a camera's sender was asked for more
        pixels, or fewer): its faces are followed on, where they now are. A detection running
        beside is of the old size: its faces are not waited for, and the next one is due at once."""
        for track in self.live:
            track.rows = [_scale_row(row, sx, sy) for row in track.rows]
            track.framing, track.anchor = (
                None if points is None else scale_points(points, sx, sy) for points in (track.framing, track.anchor)
            )
        self.detecting, self.last_full = None, -DETECT_EVERY

    def finish(self) -> list[Track]:
        """Every track long enough to keep, in the order they began."""
        self._end(self.live, hard=True)
        return sorted(self.ended, key=lambda tr: tr.id)

    def _end(self, tracks: list[Track], hard: bool) -> None:
        for track in list(tracks):
            track.hard_end = hard and track.misses == 0
            self.live.remove(track)
            if len(track.frames) >= max(MIN_FRAMES, UNSURE_SECONDS * self.fps if track.unsure else 0):
                if not self.stream:
                    self.ended.append(track)
                if self.on_end is not None:
                    self.on_end(track)

    def _detect(self, rgb: np.ndarray, parallel: bool) -> list[facelib.Face]:
        return facelib.find_faces(rgb, threshold=self.threshold, parallel=parallel, enlarge=not self.stream)

    def _untracked(self, t: int, rgb: np.ndarray) -> np.ndarray:
        """The frame with the faces its looks found blanked out: a full detection looks for new
        faces only, without the second looks at every tracked one (most of its time)."""
        found = [tr.rows[-1][:4] for tr in self.live if tr.frames[-1] == t]
        if not found:
            return rgb
        out = rgb.copy()
        h, w = rgb.shape[:2]
        for x, y, bw, bh in found:
            m = MASK_MARGIN * max(bw, bh)
            x0, y0 = int(max(0, x - m)), int(max(0, y - m))
            x1, y1 = int(min(w, x + bw + m + 1)), int(min(h, y + bh + m + 1))
            out[y0:y1, x0:x1] = out[y0:y1, x0:x1].mean(axis=(0, 1))
        return out

    def _match(self, t: int, rgb: np.ndarray, faces: list[facelib.Face], seen: int) -> None:
        """A full detection's faces (of frame `seen`, t or one before it): each to the live track its
        box overlaps most, or a new track. A detection of an earlier frame (beside the stream) is
        only where to look in this one: a face not found there waits for the next detection."""
        rows = [_row(f) for f in faces]
        pairs = sorted(
            ((overlap(row[:4], tr.rows[-1][:4]), i, k) for i, row in enumerate(rows) for k, tr in enumerate(self.live)),
            reverse=True,
        )
        used_rows, used_tracks = set(), set()
        for score, i, k in pairs:
            if score < SAME_FACE or i in used_rows or k in used_tracks:
                continue
            used_rows.add(i)
            used_tracks.add(k)
            track = self.live[k]
            if track.frames[-1] != t:  # missed by its quick look: the detection finds it again
                row = rows[i] if seen == t else self._look(rgb, rows[i], track, stale=True)
                if row is not None:
                    track.add(t, row)
        for i, row in enumerate(rows):
            if i in used_rows:
                continue
            track = Track(self.next_id)
            # The detection's landmarks sit a little off those a look framed by them finds: start
            # from such a look, as every later frame is, so the first frame does not jump.
            look = self._look(rgb, row, track, stale=seen != t)
            if look is None and seen != t:
                continue
            self.next_id += 1
            # Framed as the detection found it, as the looks at a still face stay; where the face has
            # moved since an earlier frame's detection, as the look found it.
            moved = look is not None and _moved(look[4:14], row[4:14])
            track.framing = (look if moved else row)[4:14].copy()
            track.add(t, row if look is None else look)
            self._follow_back(track)
            # Seen since its shot began (a face at a cut, or on the first frame): no fade in.
            track.hard_start = track.frames[0] == self.shot_start
            self.live.append(track)

    def _look(self, rgb: np.ndarray, row: np.ndarray, track: Track, stale: bool) -> np.ndarray | None:
        """A look at the face a detection found (`row`; `stale`: in an earlier frame) in this frame,
        as the track's row (None: not found surely enough); the track keeps the size it was found at."""
        reach = {"reach": CATCH_UP} if stale else {}
        face, track.look_size = facelib.follow(rgb, [_face(row)], parallel=True, **reach)[0]
        return _row(face) if face is not None and face.score >= self.threshold else None

    def _follow_back(self, track: Track) -> None:
        """Follow a new track back through the frames kept since the last full detection, while
        it is found there and no other track has that face."""
        others = [tr for tr in self.live + self.ended if tr.frames[-1] >= track.frames[0] - DETECT_EVERY]
        for s, rgb in reversed(self.recent):
            face, _ = facelib.follow(rgb, [track.next_look()], sizes=[track.look_size], parallel=True)[0]
            if face is None or face.score < self.threshold:
                return
            row = _row(face)
            if any(overlap(row[:4], r[:4]) > DUPLICATE for r in (_row_at(tr, s) for tr in others) if r is not None):
                return
            track.prepend(s, row)
            self._sample(track, s, row, from_array(rgb))

    def _drop_duplicates(self, t: int) -> None:
        """Two tracks that have come onto the same face: the shorter one stops (without a fade:
        the face goes on in the other) a frame earlier."""
        current = sorted((tr for tr in self.live if tr.frames[-1] == t), key=lambda tr: (-len(tr.frames), tr.id))
        for i, keep in enumerate(current):
            for drop in current[i + 1 :]:
                if (
                    keep in self.live
                    and drop in self.live
                    and overlap(keep.rows[-1][:4], drop.rows[-1][:4]) > DUPLICATE
                ):
                    drop.frames.pop()
                    drop.rows.pop()
                    drop.samples.pop(t, None)
                    self._end([drop], hard=True)

    def _sample(self, track: Track, t: int, row: np.ndarray, photo) -> None:
        track.keep(t, to_uint8(facelib.crop(photo, facelib.alignment_for(_face(row), self.crop_size))))


# ---------------------------------------------------------------- smoothing


@dataclass
class Trajectory:
    """A track over the frames it is edited in: per frame, its smoothed landmarks and the edit's weight."""

    frames: np.ndarray  # (n,) frame numbers, increasing
    points: np.ndarray  # (n, 5, 2) landmarks
    weights: np.ndarray  # (n,) in (0, 1]


def smoothstep(v: np.ndarray | float) -> np.ndarray:
    v = np.clip(v, 0, 1)
    return v * v * (3 - 2 * v)


def trajectory(track: Track, fps: float) -> Trajectory:
    """The track's frames with landmarks bridged over short gaps and smoothed, and fade weights."""
    frames = np.asarray(track.frames)
    rows = np.stack(track.rows)
    bridge = max(1, round(BRIDGE_SECONDS * fps))
    fade = max(1, round(FADE_SECONDS * fps))
    # Runs of frames whose gaps are short enough to bridge.
    breaks = np.flatnonzero(np.diff(frames) > bridge + 1) + 1
    parts = []
    for k, (a, b) in enumerate(zip([0, *breaks], [*breaks, len(frames)])):
        run = np.arange(frames[a], frames[b - 1] + 1)
        filled = np.stack([np.interp(run, frames[a:b], rows[a:b, j]) for j in range(14)], axis=1)
        scale = float(np.median(np.maximum(filled[:, 2], filled[:, 3])))  # the face's size: the filter's unit
        points = filled[:, 4:14] / scale
        t = run / fps
        smoothed = 0.5 * (one_euro(points, t) + one_euro(points[::-1], t[-1] - t[::-1])[::-1]) * scale
        steps = np.arange(1, len(run) + 1, dtype=np.float64)
        weight = np.ones(len(run))
        if not (k == 0 and track.hard_start):
            weight = np.minimum(weight, smoothstep(steps / fade))
        if not (b == len(frames) and track.hard_end):
            weight = np.minimum(weight, smoothstep(steps[::-1] / fade))
        parts.append((run, smoothed.reshape(-1, 5, 2), weight))
    return Trajectory(*(np.concatenate([p[i] for p in parts]) for i in range(3)))

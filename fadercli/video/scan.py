"""Pass 1 over a clip: every frame decoded and its faces followed (tracking.Tracker) in the
picture as displayed. As each track ends, its face's own attribute values are estimated from the
crops it kept, by the models exactly as a photo's are, and the median over those crops is the
track's: the edit's strength does not pulse from frame to frame. Nothing of the clip is kept but
landmarks and those values. A clip that decodes short of what its container declares is refused
here, before anything is written, unless `partial`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fadercli import faces as facelib
from fadercli.engine.chain import Chain
from fadercli.engine.results import FaceResult, Progress, TrackResult, VideoResult
from fadercli.errors import InputError, NoFaceError
from fadercli.limits import Limits
from fadercli.media import clips
from fadercli.media.images import centre_square, from_array, to_uint8
from fadercli.net.tensors import from_crops
from fadercli.video import tracking


@dataclass
class _Scan:
    info: clips.ClipInfo
    frames: int
    tracks: list[tracking.Track]  # largest median size first
    measured: dict[int, list[FaceResult]]  # per track id: one result per crop it kept
    notes: list[str]


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """A frame as displayed (its display matrix turns it `rotation` degrees counter-clockwise)."""
    return rgb if rotation == 0 else np.ascontiguousarray(np.rot90(rgb, rotation // 90))


def scan(
    info: clips.ClipInfo,
    measure: Callable[[list[np.ndarray]], list[FaceResult]],
    *,
    threshold: float,
    crop_size: int,
    align: bool = True,
    partial: bool = False,
    progress: Progress | None = None,
) -> _Scan:
    """Pass 1: follow the faces through every frame; `measure` each track's crops as it ends.
    Without `align`, the picture's centre square is the face, in one track over the whole clip."""
    measured: dict[int, list[FaceResult]] = {}

    def ended(track: tracking.Track) -> None:
        measured[track.id] = measure([track.samples[f] for f in sorted(track.samples)])
        track.samples = {}

    tracker = tracking.Tracker(fps=float(info.rate), threshold=threshold, crop_size=crop_size, on_end=ended)
    whole = tracking.Track(0, hard_start=True, hard_end=True)
    frames, end = 0, None
    for frame in clips.decode(info, partial=partial):
        rgb = _upright(clips.rgb(frame), info.rotation)
        if align:
            tracker.step(frames, rgb)
        else:
            _whole_picture(whole, frames, rgb, crop_size)
        end = clips.frame_end(frame, info.rate)
        frames += 1
        if progress is not None:
            progress("tracking", frames, info.frames)
    notes = []
    short = clips.shortfall(info, frames, end)
    if short is not None:
        if not partial:
            raise InputError(f"{info.path}: truncated: {short} (--partial edits those)")
        notes.append(f"{info.path} is truncated ({short}): the frames that decode are edited")
    if align:
        tracks = tracker.finish()
    else:
        ended(whole)
        tracks = [whole]
    tracks.sort(key=lambda tr: -tr.size)
    return _Scan(info, frames, tracks, measured, notes)


def _whole_picture(track: tracking.Track, t: int, rgb: np.ndarray, size: int) -> None:
    """--no-align: the centre square is the face (its box is the track's row) in every frame."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = centre_square(w, h)
    track.add(t, np.array([x0, y0, x1 - x0, y1 - y0, *[0.0] * 10, 1.0]))
    if track.due(t):
        track.keep(t, to_uint8(facelib.crop(from_array(rgb), facelib.whole_image(w, h, size))))


def _median(results: list[FaceResult], attr: str) -> dict:
    """The median of each entry of the results' `attr` dicts (category by category for lists)."""
    records = [getattr(r, attr) for r in results if getattr(r, attr)]
    out = {}
    for key in records[0] if records else ():
        value = np.median(np.array([r[key] for r in records], dtype=np.float64), axis=0)
        out[key] = value.tolist() if value.ndim else float(value)
    return out


def _track_result(index: int, track: tracking.Track, measured: list[FaceResult]) -> TrackResult:
    box = tuple(float(v) for v in np.median(np.stack(track.rows)[:, :4], axis=0))
    return TrackResult(
        index,
        box,
        _median(measured, "estimated"),
        probabilities=_median(measured, "probabilities") or None,
        first=track.frames[0],
        last=track.frames[-1],
        found=len(track.frames),
    )


def choose_tracks(found: _Scan, choice: str | int, allow_no_face: bool) -> list[tuple[int, tracking.Track]]:
    """The tracks `--face` chooses, with their indices (0 = the largest median size)."""
    if not found.tracks:
        if allow_no_face:
            found.notes.append(f"no face found in {found.info.path}: written unedited")
            return []
        raise NoFaceError(f"no face found in any frame of {found.info.path} (--allow-no-face writes it unedited)")
    return facelib.pick(list(enumerate(found.tracks)), choice, str(found.info.path), counted="tracked")


def inspect_clip(
    chain: Chain,
    src: str | os.PathLike,
    *,
    threshold: float,
    limits: Limits,
    face: str | int = "all",
    align: bool = True,
    partial: bool = False,
    progress: Progress | None = None,
) -> VideoResult:
    """The clip's tracks: frames, median box, each model's estimate and a classifier's view (medians)."""
    started = time.perf_counter()
    choice = facelib.parse_face_choice(str(face))
    info = clips.probe(src, limits)

    def measure(crops: list[np.ndarray]) -> list[FaceResult]:
        out = []
        for crop in crops:  # each as a photo taken whole, as `fader inspect --no-align` sees one
            [whole] = facelib.align_faces(from_array(crop), size=chain.size, align=False)
            estimated, probabilities = chain.estimates(from_crops([whole.crop]).to(chain.device))
            out.append(FaceResult(0, None, estimated[0], probabilities=probabilities[0]))
        return out

    found = scan(
        info, measure, threshold=threshold, crop_size=chain.size, align=align, partial=partial, progress=progress
    )
    tracks = [
        _track_result(i, tr, found.measured[tr.id]) for i, tr in choose_tracks(found, choice, allow_no_face=False)
    ]
    return VideoResult(
        info.path,
        None,
        found.frames,
        float(info.rate),
        info.display_size,
        tracks,
        time.perf_counter() - started,
        found.notes,
    )

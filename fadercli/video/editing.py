"""Editing and inspecting the faces of a clip: two passes over it, frames streaming through.

Pass 1 (`scan`): every frame decoded and its faces followed (tracking.Tracker) in the picture as
displayed. As each track ends, its face's own attribute values are estimated from the crops it
kept, by the models exactly as a photo's are (Fader.edit_many, or Fader.inspect), and the median
over those crops is the track's: the edit's strength does not pulse from frame to frame. Nothing
of the clip is kept but landmarks and those values. A clip that decodes short of what its
container declares is refused here, before anything is written, unless `partial`.

Pass 2 (`edit_clip`): decoded again; each frame's tracked faces are cropped with their smoothed
framing (tracking.trajectory), batched across frames through the models at their track's values,
faded by the track's weight, pasted back as photos are (faces.paste), and only the pixels that
changed are carried into the frame's YUV planes (clips.merge) on its way to the encoder. Audio and
subtitle packets are copied as they come. The output is written to a temporary file beside it and
moved into place at the end: a failure leaves nothing behind.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import torch

from fadercli import faces as facelib
from fadercli.api import FaceResult, Fader, Step, _resize, _tensor, _unit
from fadercli.editor import compose
from fadercli.errors import InputError, NoFaceError, OutputError, UsageError
from fadercli.files import atomic_path
from fadercli.images import centre_square, from_array, to_uint8
from fadercli.video import clips, stages, tracking

# progress(stage, frames done, frames in all or None): "tracking" (pass 1), then "editing" (pass 2).
Progress = Callable[[str, int, "int | None"], None]
# Frames waiting for a batch of faces to fill: at most this many, and this many bytes (4K frames).
MAX_PENDING = 32
MAX_PENDING_BYTES = 256e6


@dataclass
class TrackResult(FaceResult):
    """One face followed through a clip: its index among the clip's tracks (largest median size
    first), its median box in the picture as displayed, the first and last frame it is in and the
    number of frames it was found in; its values are medians over crops spread along the track."""

    first: int = 0
    last: int = 0
    found: int = 0

    def to_dict(self) -> dict:
        record = super().to_dict()
        return {"track": record.pop("face"), "frames": [self.first, self.last], "found": self.found, **record}


@dataclass
class VideoResult:
    """An edited clip (`output`), or for `inspect_clip` the tracks of one (`output` None)."""

    source: Path
    output: Path | None
    frames: int
    rate: float
    size: tuple[int, int]  # as displayed
    tracks: list[TrackResult]
    seconds: float
    notes: list[str] = field(default_factory=list)  # for the user: an odd size cut, streams left out, ...


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
        index, box, _median(measured, "estimated"), probabilities=_median(measured, "probabilities") or None,
        first=track.frames[0], last=track.frames[-1], found=len(track.frames),
    )


def _choose(found: _Scan, choice: str | int, allow_no_face: bool) -> list[tuple[int, tracking.Track]]:
    """The tracks `--face` chooses, with their indices (0 = the largest median size)."""
    path = found.info.path
    if not found.tracks:
        if allow_no_face:
            found.notes.append(f"no face found in {path}: written unedited")
            return []
        raise NoFaceError(f"no face found in any frame of {path} (--allow-no-face writes it unedited)")
    if choice == "all":
        return list(enumerate(found.tracks))
    if choice == "largest":
        return [(0, found.tracks[0])]
    if not 0 <= choice < len(found.tracks):
        raise NoFaceError(f"no face {choice} in {path}: {len(found.tracks)} tracked (0 = the largest)")
    return [(choice, found.tracks[choice])]


def inspect_clip(
    fader: Fader,
    src: str | os.PathLike,
    *,
    face: str | int = "all",
    align: bool = True,
    partial: bool = False,
    progress: Progress | None = None,
) -> VideoResult:
    """The clip's tracks: frames, median box, each model's estimate and a classifier's view (medians)."""
    started = time.perf_counter()
    choice = facelib.parse_face_choice(str(face))
    info = clips.probe(src, fader.limits)

    def measure(crops: list[np.ndarray]) -> list[FaceResult]:
        return [fader.inspect(crop, align=False)[0] for crop in crops]

    size = max(m.size for m in fader.models)
    found = scan(info, measure, threshold=fader.threshold, crop_size=size, align=align, partial=partial, progress=progress)
    tracks = [_track_result(i, tr, found.measured[tr.id]) for i, tr in _choose(found, choice, allow_no_face=False)]
    return VideoResult(info.path, None, found.frames, float(info.rate), info.display_size, tracks,
                       time.perf_counter() - started, found.notes)


# ---------------------------------------------------------------- pass 2


def edit_clip(
    fader: Fader,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    values: Mapping[str, float] | None = None,
    shift: Mapping[str, float] | None = None,
    *,
    face: str | int = "all",
    align: bool = True,
    crf: int | None = None,
    preset: str = "medium",
    partial: bool = False,
    allow_no_face: bool = False,
    progress: Progress | None = None,
) -> VideoResult:
    """Edit the tracked faces of every frame of `src` and write the clip to `dst` (see the module)."""
    started = time.perf_counter()
    plan = fader.plan(values, shift)
    choice = facelib.parse_face_choice(str(face))
    dst = Path(dst)
    muxer = clips.muxer_for(dst)
    clips.check_settings(muxer, crf, preset)
    if not dst.parent.is_dir():
        raise OutputError(f"cannot write {dst}: no such folder {dst.parent}")
    info = clips.probe(src, fader.limits)
    copied, notes = _copied(info, muxer, dst)

    size = max(step.model.size for step in plan)
    found = scan(info, functools.partial(_estimates, fader, plan), threshold=fader.threshold, crop_size=size,
                 align=align, partial=partial, progress=progress)
    chosen = _choose(found, choice, allow_no_face)
    notes = found.notes + notes
    results = [_track_result(i, tr, found.measured[tr.id]) for i, tr in chosen]
    for result in results:
        result.values = _targets(plan, result.estimated)
    if align:
        paths = [tracking.trajectory(tr, float(info.rate)) for _, tr in chosen]
    else:
        paths = [_WholePath(found.frames)] if chosen else []
    with clips.Reader(info, partial=partial, copy=copied) as reader, atomic_path(dst) as tmp:
        writer = clips.Writer(tmp, muxer, size=(info.width, info.height), rate=info.rate, time_base=info.time_base,
                              crf=crf, preset=preset, display_matrix=info.display_matrix, colour=info.colour)
        try:
            for stream in reader.copied:
                writer.copy_stream(stream)
            frames = _Frames(fader, plan, info, [r.estimated for r in results], size, paths, found.frames)
            frames.run(reader, writer, progress)
            writer.close()
        except BaseException:
            writer.abort()
            raise
    if writer.size != (info.width, info.height):
        cut = " and ".join(n for n, odd in (("column", info.width % 2), ("row", info.height % 2)) if odd)
        notes.append(f"{info.path} is {info.width} x {info.height}: H.264 needs even sides, so its last {cut}"
                     f" {'are' if ' and ' in cut else 'is'} left out ({writer.size[0]} x {writer.size[1]})")
    return VideoResult(info.path, dst, found.frames, float(info.rate), info.display_size, results,
                       time.perf_counter() - started, notes)


def _estimates(fader: Fader, plan: list[Step], crops: list[np.ndarray]) -> list[FaceResult]:
    """Each crop's own values as Fader.edit estimates a photo's (each model seeing the crop as the
    models before it left it), without the last model's two decodes, which no estimate needs."""
    x = _tensor([crop.astype(np.float32) / 255 for crop in crops]).to(fader.device)

    def stage(i: int, step: Step, xin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if i < len(plan) - 1:
            return step.model.editor.edit(xin, step.absolute, step.shift)
        estimate = step.model.editor.estimate(xin)
        return xin, estimate, estimate

    estimated = []
    for start in range(0, len(x), fader.batch_size):  # batches as Fader.edit_many makes them
        estimated += fader._edit_crops(x[start : start + fader.batch_size], plan, stage)[1]
    return [FaceResult(0, None, e) for e in estimated]


def _copied(info: clips.ClipInfo, muxer: str, dst: Path) -> tuple[list[int], list[str]]:
    """The streams to copy into the output; audio it cannot hold is an error, subtitles are left out."""
    holds = clips.holds(muxer)
    copied, notes = [], []
    for index, kind, codec in info.copied:
        if codec in holds:
            copied.append(index)
        elif kind == "audio":
            raise UsageError(f"{dst.suffix} cannot hold the {codec} audio of {info.path}, which is copied, never"
                             f" re-encoded: write .mkv (holds any codec) or .mp4")
        else:
            notes.append(f"{dst.suffix} cannot hold the {codec} subtitles of {info.path}: left out (.mkv keeps them)")
    return copied, notes


def _targets(plan: list[Step], estimated: dict[str, float]) -> dict[str, float]:
    """The values a track is edited to: its own, with the plan's set and shifted."""
    out = {}
    for step in plan:
        for name in step.model.attributes.names:
            out[name] = step.absolute.get(name, estimated[name] + step.shift.get(name, 0.0))
    return out


@dataclass
class _WholePath:
    """--no-align: the centre square of every frame, edited at full weight."""

    frames: int


def _faces_at(paths: list, t: int) -> list[tuple[int, np.ndarray | None, float]]:
    """(track, landmarks or None for the centre square, weight) of each face to edit in frame t."""
    out = []
    for k, path in enumerate(paths):
        if isinstance(path, _WholePath):
            out.append((k, None, 1.0))
            continue
        i = int(np.searchsorted(path.frames, t))
        if i < len(path.frames) and path.frames[i] == t and path.weights[i] > 0:
            out.append((k, path.points[i], float(path.weights[i])))
    return out


@dataclass
class _Pending:
    """A frame on its way through pass 2: its planes, and for the faces to edit in it, the RGB of
    the region their crops read (as displayed), their crops, and once through the models, the
    edited crops and their reference (the crops as they were)."""

    yuv: list[np.ndarray]
    pts: int | None
    duration: int
    box: tuple[int, int, int, int] | None = None  # the region, in the picture as displayed
    rgb: np.ndarray | None = None
    faces: list[tuple[int, facelib.Alignment, float]] = field(default_factory=list)  # (track, alignment, weight)
    crops: list[np.ndarray] = field(default_factory=list)
    edited: np.ndarray | None = None
    reference: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        arrays = [*self.yuv, *self.crops, self.rgb, self.edited, self.reference]
        return sum(a.nbytes for a in arrays if a is not None)


class _Frames:
    """Pass 2's frames on their way from decoder to encoder, on three threads (video/stages.py):
    decoded and cropped ahead (`_prepare`), the faces of several frames batched through the models
    on the caller's thread (`_edit`), pasted back and encoded behind (`_finish`); frames and copied
    packets leave in the order they came."""

    def __init__(self, fader: Fader, plan: list[Step], info: clips.ClipInfo, own: list[dict[str, float]],
                 size: int, paths: list, total: int):
        self.fader, self.plan, self.info, self.own = fader, plan, info, own
        self.size, self.paths, self.total = size, paths, total
        self.width, self.height = info.display_size

    def run(self, reader: clips.Reader, writer: clips.Writer, progress: Progress | None) -> None:
        ahead = stages.Channel(MAX_PENDING, MAX_PENDING_BYTES)
        behind = stages.Channel(MAX_PENDING, MAX_PENDING_BYTES)
        written = reported = 0

        def read() -> None:
            seen = 0
            for item in reader:
                if isinstance(item, av.Packet):
                    ahead.put(item)
                elif seen < self.total:
                    frame = self._prepare(item, seen)
                    ahead.put(frame, frame.nbytes)
                    seen += 1
            ahead.close()

        def write() -> None:
            nonlocal written
            for item in behind.items():
                if isinstance(item, av.Packet):
                    writer.mux(item)
                else:
                    self._finish(item, writer)
                    written += 1

        def report() -> None:  # progress on the caller's thread, once per frame written
            nonlocal reported
            while progress is not None and reported < written:
                reported += 1
                progress("editing", reported, self.total)

        def send(batch: list[_Pending]) -> None:
            self._edit(batch)
            for frame in batch:
                behind.put(frame, frame.nbytes, waiting=report)
            report()

        reading = stages.Stage("fader-read", read, ahead)
        writing = stages.Stage("fader-write", write, behind, ahead)
        reading.start()
        writing.start()
        try:
            batch: list[_Pending] = []
            for item in ahead.items(waiting=report):
                if isinstance(item, av.Packet):
                    behind.put(item, waiting=report)
                    continue
                batch.append(item)
                if (sum(len(f.faces) for f in batch) >= self.fader.batch_size or len(batch) >= MAX_PENDING
                        or sum(f.nbytes for f in batch) >= MAX_PENDING_BYTES):
                    send(batch)
                    batch = []
            send(batch)
            behind.close()
            while writing.is_alive():
                writing.join(stages.POLL_SECONDS)
                report()
        except stages.Closed:
            reading.check()
            writing.check()
            raise
        finally:
            ahead.cancel()
            behind.cancel()
            reading.join()
            writing.join()
        reading.check()
        writing.check()
        report()

    def _canvas(self, frame: _Pending) -> np.ndarray:
        """The picture as displayed, black but for the region read (all that crops and pastes touch)."""
        out = np.zeros((self.height, self.width, 3), np.uint8)
        x0, y0, x1, y1 = frame.box
        out[y0:y1, x0:x1] = frame.rgb
        return out

    def _prepare(self, decoded: av.VideoFrame, t: int) -> _Pending:
        """Frame t's planes, and the crops of the faces to edit in it."""
        frame = _Pending(clips.planes(decoded), decoded.pts, decoded.duration or 0)
        faces = _faces_at(self.paths, t)
        if not faces:
            return frame
        w, h, rotation = self.width, self.height, self.info.rotation
        for k, points, weight in faces:
            if points is None:
                alignment = facelib.whole_image(w, h, self.size)
            else:
                alignment = facelib.alignment_for(facelib.Face((0, 0, 0, 0), tuple(map(tuple, points)), 1.0), self.size)
            frame.faces.append((k, alignment, weight))
        boxes = np.array([facelib.crop_footprint(a, w, h) for _, a, _ in frame.faces])
        box = (*boxes[:, :2].min(axis=0), *boxes[:, 2:].max(axis=0))
        # Converted to RGB where the frame is stored, turned as it is displayed.
        region, stored = clips.rgb_region(decoded, frame.yuv, _coded_box(box, rotation, w, h))
        frame.box = _coded_box(stored, (360 - rotation) % 360, decoded.width, decoded.height)
        frame.rgb = np.ascontiguousarray(np.rot90(region, rotation // 90))
        photo = from_array(self._canvas(frame))
        frame.crops = [facelib.crop(photo, alignment) for _, alignment, _ in frame.faces]
        return frame

    def _edit(self, batch: list[_Pending]) -> None:
        """The faces of a batch of frames through the models, at their tracks' values."""
        crops = [c for frame in batch for c in frame.crops]
        if not crops:
            return
        x = _tensor(crops).to(self.fader.device)
        own = [self.own[k] for frame in batch for k, _, _ in frame.faces]
        edited, reference = _unit(edit_at(self.plan, x, own)), _unit(x)
        k = 0
        for frame in batch:
            n = len(frame.faces)
            frame.edited, frame.reference, frame.crops = edited[k : k + n], reference[k : k + n], []
            k += n

    def _finish(self, frame: _Pending, writer: clips.Writer) -> None:
        """Paste a frame's edits back (faded by their weights), carry them into its planes, encode it."""
        if frame.faces:
            photo = from_array(self._canvas(frame))
            for (_, alignment, weight), edited, reference in zip(frame.faces, frame.edited, frame.reference):
                faded = reference + weight * (edited - reference)
                facelib.paste(photo, alignment, faded, reference, inplace=True)
            w, h, rotation = self.width, self.height, self.info.rotation
            box = _coded_box(_footprints([a for _, a, _ in frame.faces], w, h), rotation, w, h)
            back = -rotation // 90
            clips.merge(frame.yuv, np.rot90(self._canvas(frame), back), np.rot90(photo.pixels, back), self.info, box)
        writer.write(frame.yuv, frame.pts, frame.duration)


def _footprints(alignments: list[facelib.Alignment], width: int, height: int) -> tuple[int, int, int, int]:
    """The box x0, y0, x1, y1 holding every pixel the crops cover (all that a paste can change)."""
    corners = []
    for a in alignments:
        s = a.size - 0.5
        corners.append(a.to_photo(np.array([[-0.5, -0.5], [s, -0.5], [-0.5, s], [s, s]])))
    (x0, y0), (x1, y1) = np.floor(np.min(corners, axis=(0, 1))), np.ceil(np.max(corners, axis=(0, 1))) + 1
    return int(max(x0, 0)), int(max(y0, 0)), int(min(max(x1, 0), width)), int(min(max(y1, 0), height))


def _coded_box(box: tuple[int, int, int, int], rotation: int, width: int, height: int) -> tuple[int, int, int, int]:
    """A box of the picture as displayed (width x height) in the frame as stored, which the display
    matrix turns `rotation` degrees counter-clockwise (displayed = np.rot90(stored, rotation // 90))."""
    x0, y0, x1, y1 = box
    return {
        0: (x0, y0, x1, y1),
        90: (height - y1, x0, height - y0, x1),  # stored: height wide, width high
        180: (width - x1, height - y1, width - x0, height - y0),
        270: (y0, width - x1, y1, width - x0),
    }[rotation]


@torch.inference_mode()
def edit_at(plan: list[Step], x: torch.Tensor, own: list[dict[str, float]]) -> torch.Tensor:
    """Crops in [-1, 1] through each model in turn, as Fader.edit takes them, but at each face's
    known own values (its track's) instead of values estimated from this one crop."""
    size = x.shape[-1]
    current = x
    for step in plan:
        model, editor = step.model, step.model.editor
        xin = _resize(current, model.size)
        estimate = torch.tensor([[e[n] for n in model.attributes.names] for e in own], device=xin.device)
        target = editor.values_for(estimate, step.absolute, step.shift)
        features = editor.encode(xin)
        # The reconstruction and the edit decoded in one batch.
        both = editor.decode([torch.cat([f, f]) for f in features], torch.cat([estimate, target]))
        recon, decoded = both[: len(x)], both[len(x) :]
        edited = compose(xin, recon, decoded)
        current = edited if model.size == size else (current + _resize(edited - xin, size)).clamp(-1, 1)
    return current

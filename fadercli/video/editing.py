"""Pass 2 over a clip (`edit_clip`): decoded again; each frame's tracked faces are cropped with their
smoothed framing (tracking.trajectory), batched across frames through the models at their track's
values, faded by the track's weight, pasted back as photos are (faces.paste), and only the pixels
that changed are carried into the frame's YUV planes (encoder.merge) on its way to the encoder.
Audio and subtitle packets are copied as they come. The output is written to a temporary file
beside it and moved into place at the end: a failure leaves nothing behind.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fadercli import faces as facelib
from fadercli.engine.chain import Chain, Step, at_own_values, planned_values
from fadercli.engine.results import FaceResult, Progress, VideoResult
from fadercli.errors import OutputError, UsageError, import_extra
from fadercli.files import atomic_path
from fadercli.limits import Limits
from fadercli.media import clips, encoder
from fadercli.media.images import from_array
from fadercli.net.tensors import from_crops, to_unit
from fadercli.video import stages, tracking
from fadercli.video.scan import _track_result, choose_tracks, scan

av = import_extra("av", "video")

# Frames waiting for a batch of faces to fill: at most this many, and this many bytes (4K frames).
MAX_PENDING = 32
MAX_PENDING_BYTES = 256e6


def edit_clip(
    chain: Chain,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    values: Mapping[str, float] | None = None,
    shift: Mapping[str, float] | None = None,
    *,
    threshold: float,
    limits: Limits,
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
    plan = chain.plan(values, shift)
    choice = facelib.parse_face_choice(str(face))
    dst = Path(dst)
    muxer = encoder.muxer_for(dst)
    encoder.check_settings(muxer, crf, preset)
    if not dst.parent.is_dir():
        raise OutputError(f"cannot write {dst}: no such folder {dst.parent}")
    info = clips.probe(src, limits)
    copied, notes = _copied(info, muxer, dst)

    size = max(step.model.size for step in plan)
    found = scan(
        info,
        functools.partial(_estimates, chain, plan),
        threshold=threshold,
        crop_size=size,
        align=align,
        partial=partial,
        progress=progress,
    )
    chosen = choose_tracks(found, choice, allow_no_face)
    notes = found.notes + notes
    results = [_track_result(i, tr, found.measured[tr.id]) for i, tr in chosen]
    for result in results:
        result.values = planned_values(plan, result.estimated)
    if align:
        paths = [tracking.trajectory(tr, float(info.rate)) for _, tr in chosen]
    else:
        paths = [_WholePath(found.frames)] if chosen else []
    with clips.Reader(info, partial=partial, copy=copied) as reader, atomic_path(dst) as tmp:
        writer = encoder.Writer(
            tmp,
            muxer,
            size=(info.width, info.height),
            rate=info.rate,
            time_base=info.time_base,
            crf=crf,
            preset=preset,
            display_matrix=info.display_matrix,
            colour=info.colour,
        )
        try:
            for stream in reader.copied:
                writer.copy_stream(stream)
            frames = _Frames(chain, plan, info, [r.estimated for r in results], size, paths, found.frames)
            frames.run(reader, writer, progress)
            writer.close()
        except BaseException:
            writer.abort()
            raise
    if writer.size != (info.width, info.height):
        cut = " and ".join(n for n, odd in (("column", info.width % 2), ("row", info.height % 2)) if odd)
        notes.append(
            f"{info.path} is {info.width} x {info.height}: H.264 needs even sides, so its last {cut}"
            f" {'are' if ' and ' in cut else 'is'} left out ({writer.size[0]} x {writer.size[1]})"
        )
    return VideoResult(
        info.path, dst, found.frames, float(info.rate), info.display_size, results, time.perf_counter() - started, notes
    )


def _estimates(chain: Chain, plan: list[Step], crops: list[np.ndarray]) -> list[FaceResult]:
    """Each crop's own values as a photo's are estimated for an edit (Chain.own_values)."""
    x = from_crops([crop.astype(np.float32) / 255 for crop in crops]).to(chain.device)
    return [FaceResult(0, None, e) for e in chain.own_values(x, plan)]


def _copied(info: clips.ClipInfo, muxer: str, dst: Path) -> tuple[list[int], list[str]]:
    """The streams to copy into the output; audio it cannot hold is an error, subtitles are left out."""
    holds = encoder.holds(muxer)
    copied, notes = [], []
    for index, kind, codec in info.copied:
        if codec in holds:
            copied.append(index)
        elif kind == "audio":
            raise UsageError(
                f"{dst.suffix} cannot hold the {codec} audio of {info.path}, which is copied, never"
                f" re-encoded: write .mkv (holds any codec) or .mp4"
            )
        else:
            notes.append(f"{dst.suffix} cannot hold the {codec} subtitles of {info.path}: left out (.mkv keeps them)")
    return copied, notes


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

    def __init__(
        self,
        chain: Chain,
        plan: list[Step],
        info: clips.ClipInfo,
        own: list[dict[str, float]],
        size: int,
        paths: list,
        total: int,
    ):
        self.chain, self.plan, self.info, self.own = chain, plan, info, own
        self.size, self.paths, self.total = size, paths, total
        self.width, self.height = info.display_size

    def run(self, reader: clips.Reader, writer: encoder.Writer, progress: Progress | None) -> None:
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
                if (
                    sum(len(f.faces) for f in batch) >= self.chain.batch_size
                    or len(batch) >= MAX_PENDING
                    or sum(f.nbytes for f in batch) >= MAX_PENDING_BYTES
                ):
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
        x = from_crops(crops).to(self.chain.device)
        own = [self.own[k] for frame in batch for k, _, _ in frame.faces]
        edited, reference = to_unit(self.chain.run(x, self.plan, at_own_values(own))[0]), to_unit(x)
        k = 0
        for frame in batch:
            n = len(frame.faces)
            frame.edited, frame.reference, frame.crops = edited[k : k + n], reference[k : k + n], []
            k += n

    def _finish(self, frame: _Pending, writer: encoder.Writer) -> None:
        """Paste a frame's edits back (faded by their weights), carry them into its planes, encode it."""
        if frame.faces:
            photo = from_array(self._canvas(frame))
            for (_, alignment, weight), edited, reference in zip(frame.faces, frame.edited, frame.reference):
                faded = reference + weight * (edited - reference)
                facelib.paste(photo, alignment, faded, reference, inplace=True)
            w, h, rotation = self.width, self.height, self.info.rotation
            box = _coded_box(facelib.footprint([a for _, a, _ in frame.faces], w, h), rotation, w, h)
            back = -rotation // 90
            encoder.merge(frame.yuv, np.rot90(self._canvas(frame), back), np.rot90(photo.pixels, back), self.info, box)
        writer.write(frame.yuv, frame.pts, frame.duration)


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

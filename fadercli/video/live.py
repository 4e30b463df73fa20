"""A live stream of frames (a camera): each frame's faces edited as it comes, by the video editor's pieces.

`LiveEditor.edit` takes one decoded frame and gives it back edited at once. Faces are followed by
the clip's Tracker in stream mode (tracking.py), whose full detections run beside the stream on
another thread (a frame never waits for one: a face new to the stream joins a few frames after
it comes, and fades in); each track's landmarks are smoothed by the One
Euro filter run forwards only, since the frames after this one are not known yet; its own values
are the median of those estimated from the few crops the tracker keeps of it (a couple estimated
per frame, so that no frame waits for many); it is edited at them by the clip's per-track stage
(engine.chain.at_own_values), faded in where a face appears and out where it is lost, and pasted
back as photos are. Nothing of a frame is kept but what the tracker keeps (landmarks, a few crops
a face). No PyAV: the frames come decoded.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from fadercli import faces as facelib
from fadercli.engine.chain import Chain, Step, at_own_values, planned_values
from fadercli.media.images import from_array
from fadercli.net.tensors import from_crops, to_unit
from fadercli.video import tracking

ESTIMATES_PER_FRAME = 2  # crops estimated per frame at most (each costs an encode and a search of decodes)


@dataclass
class LiveFace:
    """A face in a live frame: where (x, y, w, h), its track's own values, the values it was edited
    to (None: not edited in this frame) and the edit's weight (fading in and out)."""

    track: int
    box: tuple[float, float, float, float]
    estimated: dict[str, float]
    values: dict[str, float] | None
    weight: float


@dataclass
class LiveFrame:
    image: np.ndarray  # H x W x 3 uint8 RGB
    faces: list[LiveFace]
    seconds: float
    # How much the largest face found in the frame is enlarged into the models' crop (crop pixels
    # per frame pixel; None: no face): above 1, a sender that can send that many times more pixels
    # a side gives the models a sharper face. The largest: a small face in the background, or a
    # false one, does not decide.
    zoom: float | None = None


@dataclass
class _Follow:
    """What a live editor keeps of a track besides the tracker's: its filter, when it was first
    edited and last found, and the estimates of its kept crops (by frame)."""

    smooth: tracking.OneEuro = field(default_factory=tracking.OneEuro)
    points: np.ndarray | None = None
    first: float | None = None
    seen: float = 0.0
    estimates: dict[int, dict[str, float]] = field(default_factory=dict)

    def own(self) -> dict[str, float]:
        names = next(iter(self.estimates.values()))
        return {n: float(np.median([e[n] for e in self.estimates.values()])) for n in names}


class LiveEditor:
    """Edits the faces of a stream of frames, one frame at a time (see the module). One per stream:
    it follows that stream's faces; its Chain may be shared."""

    def __init__(self, chain: Chain, *, threshold: float, fps: float = 15.0, max_faces: int = 16):
        """`fps`: the stream's usual rate (how many missed looks end a track); `max_faces`: the
        largest faces edited per frame."""
        self.chain = chain
        self.max_faces = max_faces
        self.tracker = tracking.Tracker(
            fps=fps, threshold=threshold, crop_size=chain.size, stream=True, beside=tracking.detections()
        )
        self.follows: dict[int, _Follow] = {}
        self.names: tuple[str, ...] = ()
        self.frames = 0
        self.shape: tuple[int, ...] | None = None  # the last frame's height and width

    def edit(
        self,
        rgb: np.ndarray,
        values: Mapping[str, float] | None = None,
        shift: Mapping[str, float] | None = None,
        *,
        at: float | None = None,
    ) -> LiveFrame:
        """The frame (H x W x 3 uint8 RGB) with its faces edited: `values` set, `shift` moved from
        each face's own values (neither: the faces are followed and measured, not edited). `at`:
        when the frame was taken, in seconds (default: now). UsageError for unknown names or values."""
        started = time.perf_counter()
        now = time.monotonic() if at is None else at
        plan = self.chain.plan(values, shift) if values or shift else None
        t, self.frames = self.frames, self.frames + 1
        if self.shape is not None and rgb.shape[:2] != self.shape:
            self._rescale(rgb.shape[1] / self.shape[1], rgb.shape[0] / self.shape[0])
        self.shape = rgb.shape[:2]
        self.tracker.step(t, rgb)
        tracks = {tr.id: tr for tr in self.tracker.live}
        for gone in self.follows.keys() - tracks.keys():
            del self.follows[gone]
        self._measure(tracks)
        photo = from_array(np.array(rgb, dtype=np.uint8))
        faces, edits, zoom = [], [], None
        for track in sorted(tracks.values(), key=lambda tr: -tr.size)[: self.max_faces]:
            follow = self.follows.setdefault(track.id, _Follow())
            if track.frames[-1] == t:
                follow.seen = now
                follow.points = follow.smooth(track.rows[-1][4:14], now, track.size)
            if not follow.estimates or follow.points is None:
                continue  # nothing to edit it at yet
            if follow.first is None:
                follow.first = now
            weight = self._weight(track, follow, now)
            own = follow.own()
            target = planned_values(plan, own) if plan is not None and weight > 0 else None
            box = tuple(float(v) for v in track.rows[-1][:4])
            faces.append(LiveFace(track.id, box, own, target, weight))
            alignment = facelib.alignment_for(
                facelib.Face(box, tuple(map(tuple, follow.points.reshape(5, 2))), 1.0), self.chain.size
            )
            if track.frames[-1] == t:  # faces in the picture now: not one lost, fading out
                zoom = min(zoom or np.inf, float(np.sqrt(abs(np.linalg.det(alignment.m[:, :2])))))
            if target is not None:
                edits.append((alignment, own, weight))
        if edits:
            self._edit(photo, plan, edits)
        return LiveFrame(photo.pixels, faces, time.perf_counter() - started, zoom)

    def _rescale(self, sx: float, sy: float) -> None:
        """Frames of a new size (the sender sends more pixels, or fewer): the faces followed on,
        their smoothed landmarks scaled with them."""
        self.tracker.rescale(sx, sy)
        for follow in self.follows.values():
            if follow.points is not None:
                follow.points = tracking.scale_points(follow.points, sx, sy)
            if follow.smooth.value is not None:
                follow.smooth.value = tracking.scale_points(follow.smooth.value, sx, sy)
                follow.smooth.speed = follow.smooth.speed * np.tile([sx, sy], 5)

    def _measure(self, tracks: dict[int, tracking.Track]) -> None:
        """Estimate a few of the tracks' kept crops not estimated yet, those of tracks with none first."""
        names = tuple(self.chain.attributes)
        if names != self.names:  # a model was added to the chain (a server loads them later): measure again
            self.names = names
            for follow in self.follows.values():
                follow.estimates.clear()
        waiting = []
        for track in tracks.values():
            follow = self.follows.setdefault(track.id, _Follow())
            # Crops the tracker has thinned out no longer count, unless the face would be left with none.
            kept = {f: e for f, e in follow.estimates.items() if f in track.samples}
            follow.estimates = kept or follow.estimates
            fresh = sorted(track.samples.keys() - follow.estimates.keys())
            waiting += [(bool(follow.estimates), frame, track, frame) for frame in fresh]
        waiting.sort(key=lambda w: w[:2])
        chosen = waiting[:ESTIMATES_PER_FRAME]
        if not chosen:
            return
        crops = [track.samples[frame].astype(np.float32) / 255 for _, _, track, frame in chosen]
        estimated = self.chain.own_values(from_crops(crops).to(self.chain.device), self._neutral())
        for (_, _, track, frame), values in zip(chosen, estimated):
            self.follows[track.id].estimates[frame] = values

    def _neutral(self) -> list[Step]:
        """A plan that moves nothing, over every model that edits something: the estimates of a
        face's own values do not depend on the sliders (each model sees the crop as it is)."""
        names = {name.lower(): name for name in reversed(self.chain.attributes)}
        return self.chain.plan(None, {name: 0.0 for name in names.values()})

    @staticmethod
    def _weight(track: tracking.Track, follow: _Follow, now: float) -> float:
        """Fading in from the first edit (not for a face there from the stream's first frame or a
        scene cut, which comes with the picture), and out from the last look that found it, after a
        short bridge (a missed look)."""
        fade = tracking.FADE_SECONDS
        arriving = 1.0 if track.hard_start else tracking.smoothstep((now - follow.first) / fade)
        leaving = tracking.smoothstep(1 - (now - follow.seen - tracking.BRIDGE_SECONDS) / fade)
        return float(min(arriving, leaving))

    def _edit(self, photo, plan: list[Step], edits: list[tuple[facelib.Alignment, dict[str, float], float]]) -> None:
        """The faces through the models at their tracks' values, faded, pasted back into `photo`."""
        crops = [facelib.crop(photo, alignment) for alignment, _, _ in edits]
        x = from_crops(crops).to(self.chain.device)
        edited = to_unit(self.chain.run(x, plan, at_own_values([own for _, own, _ in edits]))[0])
        reference = to_unit(x)
        for (alignment, _, weight), e, r in zip(edits, edited, reference):
            facelib.paste(photo, alignment, r + weight * (e - r), r, inplace=True)

"""The Python API: edit, inspect and sweep the faces in photos and clips with Fader models.

    from fadercli.api import Fader

    fader = Fader.load("runs/smiling")                       # any --model spec, or a list of them
    fader = Fader.load(attributes=["Male", "Eyeglasses"])    # the registry's model for each attribute
    result = fader.edit("photo.jpg", {"Smiling": 1.5})       # a path, PIL image, array or Photo
    result.image, result.faces                               # the edited image, of the kind given
    for result in fader.edit_many(paths, shift={"Smiling": 0.5}):   # faces batched across photos
        ...
    fader.inspect("photo.jpg")                               # each face's own values (+ a classifier's view)
    fader.sweep("photo.jpg", "Smiling", steps=10).save("smiling.gif")
    analysis = fader.analyse("photo.jpg")                    # once; then any number of renders
    analysis.render(faces={0: {"Smiling": 0.8}}, max_size=800)   # (engine/analysis.py)
    live = fader.live()                                      # a camera's frames, one at a time
    live.edit(rgb_frame, {"Smiling": 1.5}).image             # (video/live.py)

A photo's way: read it (media.images, through the gate) -> find and choose its faces (faces) ->
an Analysis (engine.analysis): aligned crops, each model's encoding, estimated values and
reconstruction -> a render: the target values decoded, composed (net.editor) and pasted back
(faces.paste), so every pixel the edit does not reach stays bit-identical to the input.
`fader edit`, Fader.edit and `fader serve` all render analyses, so their pixels agree by
construction. Several models are a Chain (engine.chain): each attribute goes to the first model
that edits it, and each edits the face as the one before it left it. This module is the facade
that a notebook, the CLI and the server call; the work is done below it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from fadercli import faces as facelib
from fadercli import say
from fadercli.devices import Precision, pick_device, pick_precision
from fadercli.engine.analysis import Analysis, render_together
from fadercli.engine.chain import DEFAULT_BATCH, Chain, Model, Step
from fadercli.engine.results import EditResult, FaceResult, Progress, VideoResult
from fadercli.engine.sweep import Sweep, sweep, sweep_size, sweep_values
from fadercli.errors import FaderError, UsageError
from fadercli.limits import DEFAULT as DEFAULT_LIMITS
from fadercli.limits import Limits
from fadercli.media.images import ImageLike, Photo, as_photo
from fadercli.media.writing import like
from fadercli.net.model import AutoEncoder
from fadercli.net.tensors import from_crops
from fadercli.video.live import LiveEditor
from fadercli.weights.format import LoadedModel

__all__ = ["Analysis", "EditResult", "FaceResult", "Fader", "ImageLike", "Model", "Step", "Sweep", "VideoResult"]


class Fader:
    """One or more Fader models, loaded once, editing the faces of any number of photos and clips."""

    def __init__(
        self,
        models: Sequence[Model | LoadedModel | AutoEncoder],
        *,
        device: str | torch.device = "auto",
        precision: str | Precision = "auto",
        batch_size: int = DEFAULT_BATCH,
        threshold: float | None = None,
        quiet: bool = True,
        limits: Limits = DEFAULT_LIMITS,
    ):
        device = pick_device(device) if isinstance(device, str) else torch.device(device)
        precision = pick_precision(precision, device) if isinstance(precision, str) else precision
        self.chain = Chain(models, device, batch_size, precision)
        self.threshold = facelib.DEFAULT_THRESHOLD if threshold is None else threshold  # the detector's
        self.quiet = quiet
        self.limits = limits  # what one photo or frame may cost: pixels, faces (limits.Limits)

    @classmethod
    def load(
        cls,
        models: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        *,
        attributes: Sequence[str] = (),
        device: str | torch.device = "auto",
        precision: str | Precision = "auto",
        batch_size: int = DEFAULT_BATCH,
        threshold: float | None = None,
        quiet: bool = False,
        limits: Limits = DEFAULT_LIMITS,
    ) -> Fader:
        """Models named by `--model` specs (weights.hub.resolve_model: registry names, files, run
        folders, URLs), or else the registry's model for each of `attributes`. Each of `attributes`
        must be edited by one of the models (a UsageError now rather than after the work).
        `precision`: auto (bfloat16 where the device computes it natively, see devices.pick_precision),
        fp32, bf16 or fp16."""
        from fadercli.weights import hub

        specs = [models] if isinstance(models, (str, os.PathLike)) else list(models or ())
        if not specs:
            if not attributes:
                raise UsageError("name a model (--model) or the attributes to edit")
            specs = list(dict.fromkeys(hub.model_for_attribute(a) for a in attributes))
        device = pick_device(device) if isinstance(device, str) else device  # fails before any download
        precision = pick_precision(precision, device) if isinstance(precision, str) else precision
        loaded = [hub.resolve_model(str(spec), kind="fader", quiet=quiet) for spec in specs]
        fader = cls(
            loaded,
            device=device,
            precision=precision,
            batch_size=batch_size,
            threshold=threshold,
            quiet=quiet,
            limits=limits,
        )
        for name in attributes:
            fader.owner(name)
        return fader

    # ------------------------------------------------------------ the chain of models

    @property
    def models(self) -> list[Model]:
        return self.chain.models

    @property
    def device(self) -> torch.device:
        return self.chain.device

    @property
    def precision(self) -> Precision:
        return self.chain.precision

    @property
    def batch_size(self) -> int:
        return self.chain.batch_size

    @property
    def attributes(self) -> list[str]:
        """Every attribute the models edit, in model order."""
        return self.chain.attributes

    def owner(self, name: str) -> tuple[Model, str]:
        """The first model that edits attribute `name` (case-insensitive), and the name as it spells it."""
        return self.chain.owner(name)

    def slider_range(self, name: str) -> tuple[float, float]:
        """The recommended range of an attribute (the model's metadata)."""
        return self.chain.slider_range(name)

    def plan(self, values: Mapping[str, float] | None, shift: Mapping[str, float] | None) -> list[Step]:
        """What each model does, in model order; UsageError for unknown names and impossible values."""
        return self.chain.plan(values, shift)

    # ------------------------------------------------------------ photos

    def analyse(
        self, image: ImageLike, *, face: str | int = "all", align: bool = True, name: str | None = None
    ) -> Analysis:
        """Find the faces of an image once, for any number of renders (engine.analysis.Analysis): each
        model encodes the faces, estimates their own values and reconstructs them the first time it is
        needed. `name` is what error messages call the image (default: its path, or "the photo")."""
        started = time.perf_counter()
        photo = as_photo(image, self.limits)
        choice = facelib.parse_face_choice(str(face))
        where = name or (str(photo.path) if photo.path else "the photo")
        if align:
            found = facelib.find_faces(photo, threshold=self.threshold, max_faces=self.limits.max_faces)
            faces = facelib.select_faces(found, choice, where)
            say(f"{where}: {len(found)} face(s) found, {len(faces)} chosen", logging.DEBUG)
        else:
            faces = [(0, None)]
        return Analysis(self.chain, image, photo, faces, where, time.perf_counter() - started)

    def edit(
        self,
        image: ImageLike,
        values: Mapping[str, float] | None = None,
        shift: Mapping[str, float] | None = None,
        *,
        face: str | int = "all",
        align: bool = True,
        name: str | None = None,
    ) -> EditResult:
        """Edit the faces of one image: `values` sets attributes (0 without, 1 with, beyond exaggerates),
        `shift` moves them from the value the model estimates for each face. NoFaceError if none.
        An analysis rendered once (`analyse(image).render(values, shift)`)."""
        self.plan(values, shift)  # names and values checked before the image is read
        analysis = self.analyse(image, face=face, align=align, name=name)
        [result] = render_together([analysis], values, shift)
        return replace(result, image=like(result.image, image), seconds=analysis.seconds + result.seconds)

    def edit_many(
        self,
        images: Iterable[ImageLike],
        values: Mapping[str, float] | None = None,
        shift: Mapping[str, float] | None = None,
        *,
        face: str | int = "all",
        align: bool = True,
        on_error: Callable[[ImageLike, FaderError], None] | None = None,
    ) -> Iterator[EditResult]:
        """Edit many images, yielding results in order as they are done; the faces of several images go
        through the models together (`batch_size` faces at a time). An image that fails on its own
        (unreadable, no face) raises, or with `on_error` is handed to it and skipped; any other failure
        (the face detector cannot be had) raises, since every image would fail alike."""
        self.plan(values, shift)
        batch: list[Analysis] = []
        for image in images:
            try:
                analysis = self.analyse(image, face=face, align=align)
            except FaderError as e:
                if on_error is None or not e.one_input:
                    raise
                on_error(image, e)
                continue
            batch.append(analysis)
            if sum(len(a.indices) for a in batch) >= self.batch_size:
                yield from self._render(batch, values, shift)
                batch = []
        if batch:
            yield from self._render(batch, values, shift)

    def _render(self, batch: list[Analysis], values, shift) -> Iterator[EditResult]:
        for analysis, result in zip(batch, render_together(batch, values, shift)):
            yield replace(result, image=like(result.image, analysis.source), seconds=analysis.seconds + result.seconds)

    @torch.inference_mode()
    def inspect(self, image: ImageLike, *, face: str | int = "all", align: bool = True) -> list[FaceResult]:
        """Each face's own values, as each model estimates them, and where a classifier is at hand (the
        model's training run's, or the authors' for theirs) its probabilities for every attribute it knows."""
        photo = as_photo(image, self.limits)
        aligned = self._align(photo, self.chain.size, face, align)
        estimated, probabilities = self.chain.estimates(
            from_crops([f.crop for f in aligned]).to(self.device), self.quiet
        )
        return [
            FaceResult(f.index, f.face.box if f.face else None, e, probabilities=p)
            for f, e, p in zip(aligned, estimated, probabilities)
        ]

    def sweep(
        self,
        images: ImageLike | Analysis | Sequence[ImageLike | Analysis],
        attributes: str | Sequence[str],
        *,
        steps: int = 10,
        value_range: tuple[float, float] | None = None,
        face: str | int = "largest",
        align: bool = True,
        crop: bool = False,
        max_size: int = 256,
    ) -> Sweep:
        """Each attribute slid through `steps` values over `value_range` (default: the attribute's
        recommended range), the others kept at each face's own values (engine.sweep). `images` may be
        analyses, whose faces are not looked for again (`align` is then theirs)."""
        single = (str, os.PathLike, Photo, Image.Image, np.ndarray, Analysis)
        images = [images] if isinstance(images, single) else list(images)
        names = [attributes] if isinstance(attributes, str) else list(attributes)
        values = sweep_values(self.chain, names, steps=steps, value_range=value_range, max_size=max_size)
        if not images:
            raise UsageError("a sweep needs at least one image and one attribute")
        size = sweep_size(self.chain, names)
        photos = [image.photo if isinstance(image, Analysis) else as_photo(image, self.limits) for image in images]
        aligned = [
            image.aligned(size, facelib.parse_face_choice(str(face)))
            if isinstance(image, Analysis)
            else self._align(p, size, face, align)
            for image, p in zip(images, photos)
        ]
        return sweep(self.chain, photos, aligned, values, crop=crop, max_size=max_size)

    def _align(self, photo: Photo, size: int, face: str | int, align: bool) -> list[facelib.AlignedFace]:
        return facelib.align_faces(
            photo,
            size=size,
            choice=facelib.parse_face_choice(str(face)),
            align=align,
            threshold=self.threshold,
            max_faces=self.limits.max_faces,
        )

    # ------------------------------------------------------------ clips (fadercli/video)

    def edit_video(
        self,
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
        """Edit the faces of every frame of a clip and write it to `dst` (.mp4, .mov, .mkv: H.264;
        .webm: VP9), with the input's timestamps, rotation and audio (copied). Faces are tracked, their
        framing smoothed over time and each track's own values estimated once, so the edit does not
        flicker. `face` chooses among tracks (0 = the largest median size). `progress(stage, done,
        total)` is called per frame: stage "tracking", then "editing". NoFaceError when no frame has
        a face (unless `allow_no_face`); InputError for a truncated clip (unless `partial`)."""
        from fadercli.video.editing import edit_clip  # the video extra (PyAV): imported when a clip comes

        return edit_clip(
            self.chain,
            src,
            dst,
            values,
            shift,
            threshold=self.threshold,
            limits=self.limits,
            face=face,
            align=align,
            crf=crf,
            preset=preset,
            partial=partial,
            allow_no_face=allow_no_face,
            progress=progress,
        )

    def live(self, *, fps: float = 15.0) -> LiveEditor:
        """An editor for a live stream of frames, a camera's (video.live.LiveEditor): its `edit(frame,
        values, shift)` gives each H x W x 3 uint8 RGB frame back at once, its faces followed from
        frame to frame, framed and valued without flicker, as a clip's are. One per stream; `fps` is
        the stream's usual rate. Needs no PyAV.

            live = fader.live()
            for frame in camera_frames:                        # RGB arrays, e.g. from cv2.VideoCapture
                show(live.edit(frame, {"Smiling": 1.5}).image)
        """
        return LiveEditor(self.chain, threshold=self.threshold, fps=fps, max_faces=self.limits.max_faces)

    def inspect_video(
        self,
        src: str | os.PathLike,
        *,
        face: str | int = "all",
        align: bool = True,
        partial: bool = False,
        progress: Progress | None = None,
    ) -> VideoResult:
        """A clip's tracked faces: per track its frames, median box and own values (medians over the track)."""
        from fadercli.video.scan import inspect_clip

        return inspect_clip(
            self.chain,
            src,
            threshold=self.threshold,
            limits=self.limits,
            face=face,
            align=align,
            partial=partial,
            progress=progress,
        )

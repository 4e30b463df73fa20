"""The Python API: edit, inspect and sweep the faces in photos with Fader models.

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
    analysis.render(faces={0: {"Smiling": 0.8}}, max_size=800)   # (fadercli/analysis.py)

An edit goes: read the photo -> find and align its faces at the model's size (faces.align_faces)
-> Editor.analyse (encode once, estimate the face's own values, decode the reconstruction there)
-> decode the target values -> editor.compose -> paste the change back (faces.paste), so every
pixel the edit does not reach stays bit-identical to the input. Fader.edit is Fader.analyse then
Analysis.render, the very calls `fader serve` makes, so the server's pixels are `fader edit`'s.

Several models are chained: each attribute goes to the first model that edits it, and each model
edits the face as the one before it left it. Faces are aligned once, at the largest model size;
a smaller model sees the crop resized and its change is resized back.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fadercli import faces as facelib
from fadercli import say
from fadercli.attributes import AttributeSet, did_you_mean
from fadercli.devices import pick_device
from fadercli.editor import Editor
from fadercli.errors import DownloadError, FaderError, ModelError, OutputError, UsageError
from fadercli.grids import fit_size, gif_bytes, pad, resize, save_gif, tile
from fadercli.images import (
    Photo, encode_image, from_array, from_pil, image_format, read_image, save_image, to_pil, to_uint8,
)
from fadercli.limits import DEFAULT as DEFAULT_LIMITS
from fadercli.limits import MAX_STEPS, MAX_VALUE, Limits
from fadercli.model import AutoEncoder
from fadercli.weights import LoadedModel, default_slider_ranges, require_kind

if TYPE_CHECKING:
    from fadercli.analysis import Analysis
    from fadercli.video.editing import VideoResult

ImageLike = Union[str, os.PathLike, Photo, Image.Image, np.ndarray]
DEFAULT_BATCH = 16  # faces per pass through the models: enough to keep a CPU busy, little memory


@dataclass(eq=False)
class Model:
    """A Fader model ready to edit crops (see editor.Editor)."""

    loaded: LoadedModel
    editor: Editor

    @property
    def attributes(self) -> AttributeSet:
        return self.loaded.attributes

    @property
    def size(self) -> int:
        return self.loaded.config.img_size


@dataclass
class FaceResult:
    """One face: its index among the photo's faces (largest first), its box in the photo (None for a
    whole image), the values the models estimate for it, and the values an edit gave it or the
    probabilities a classifier gives its attributes (binary: of "with"; categorical: per category)."""

    index: int
    box: tuple[float, float, float, float] | None
    estimated: dict[str, float] = field(default_factory=dict)
    values: dict[str, float] | None = None
    probabilities: dict[str, float | list[float]] | None = None

    def to_dict(self) -> dict:
        record: dict = {"face": self.index, "box": None if self.box is None else [round(v, 2) for v in self.box]}
        record["estimated"] = {k: round(v, 4) for k, v in self.estimated.items()}
        if self.values is not None:
            record["values"] = {k: round(v, 4) for k, v in self.values.items()}
        if self.probabilities is not None:
            record["probabilities"] = {k: _rounded(v) for k, v in self.probabilities.items()}
        return record


def _rounded(value: float | list[float]) -> float | list[float]:
    return [round(v, 4) for v in value] if isinstance(value, list) else round(value, 4)


@dataclass
class EditResult:
    """An edited image, of the kind given (a Photo for a file: `images.save_image` writes it)."""

    source: ImageLike
    image: Photo | Image.Image | np.ndarray
    faces: list[FaceResult]
    seconds: float  # this image's share of the work (reading, finding faces, the models, pasting)


@dataclass
class Step:
    """One model's part of an edit: the attributes it sets and those it shifts."""

    model: Model
    absolute: dict[str, float]
    shift: dict[str, float]


# One model's part of an edit on its input crops: (i, step, crops) -> (edited, estimated, target values).
Stage = Callable[[int, Step, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass
class _Pending:
    source: ImageLike
    photo: Photo
    aligned: list[facelib.AlignedFace]
    seconds: float


class Fader:
    """One or more Fader models, loaded once, editing the faces of any number of photos."""

    def __init__(
        self,
        models: Sequence[Model | LoadedModel | AutoEncoder],
        *,
        device: str | torch.device = "auto",
        batch_size: int = DEFAULT_BATCH,
        threshold: float | None = None,
        quiet: bool = True,
        limits: Limits = DEFAULT_LIMITS,
    ):
        if not models:
            raise UsageError("no model given")
        if batch_size < 1:
            raise UsageError(f"the batch size must be at least 1, got {batch_size}")
        self.device = pick_device(device) if isinstance(device, str) else torch.device(device)
        self.batch_size = batch_size
        self.threshold = facelib.DEFAULT_THRESHOLD if threshold is None else threshold  # the detector's
        self.quiet = quiet
        self.limits = limits  # what one photo or frame may cost: pixels, faces (limits.Limits)
        self.models = [self._model(m) for m in models]
        self._classifiers: dict[str, LoadedModel | None] = {}

    def _model(self, model: Model | LoadedModel | AutoEncoder) -> Model:
        if isinstance(model, Model):  # already made ready (e.g. shared by several Fader objects)
            return model
        if isinstance(model, AutoEncoder):
            attributes = AttributeSet.from_pairs(model.config.attributes)
            model = LoadedModel("fader", model, model.config, default_slider_ranges(attributes))
        require_kind(str(model.path or "model"), model.kind, "fader")
        return Model(model, Editor(model.model, self.device, batch_size=self.batch_size))

    @classmethod
    def load(
        cls,
        models: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        *,
        attributes: Sequence[str] = (),
        device: str | torch.device = "auto",
        batch_size: int = DEFAULT_BATCH,
        threshold: float | None = None,
        quiet: bool = False,
        limits: Limits = DEFAULT_LIMITS,
    ) -> Fader:
        """Models named by `--model` specs (hub.resolve_model: registry names, files, run folders, URLs),
        or else the registry's model for each of `attributes`. Each of `attributes` must be edited by
        one of the models (a UsageError now rather than after the work)."""
        from fadercli import hub

        specs = [models] if isinstance(models, (str, os.PathLike)) else list(models or ())
        if not specs:
            if not attributes:
                raise UsageError("name a model (--model) or the attributes to edit")
            specs = list(dict.fromkeys(hub.model_for_attribute(a) for a in attributes))
        device = pick_device(device) if isinstance(device, str) else device  # fails before any download
        loaded = [hub.resolve_model(str(spec), kind="fader", quiet=quiet) for spec in specs]
        fader = cls(loaded, device=device, batch_size=batch_size, threshold=threshold, quiet=quiet, limits=limits)
        for name in attributes:
            fader.owner(name)
        return fader

    # ------------------------------------------------------------ attributes

    @property
    def attributes(self) -> list[str]:
        """Every attribute the models edit, in model order."""
        return [name for m in self.models for name in m.attributes.names]

    def owner(self, name: str) -> tuple[Model, str]:
        """The first model that edits attribute `name` (case-insensitive), and the name as it spells it."""
        for model in self.models:
            for a in model.attributes:
                if a.name.lower() == name.lower():
                    return model, a.name
        names = self.attributes
        what = "this model edits" if len(self.models) == 1 else "these models edit"
        raise UsageError(
            f"unknown attribute {name!r}: {what} {', '.join(names)}.{did_you_mean(name, names)}", code="unknown_attribute"
        )

    def slider_range(self, name: str) -> tuple[float, float]:
        """The recommended range of an attribute (the model's metadata; the authors': 1 - max .. max)."""
        model, canonical = self.owner(name)
        return model.loaded.slider_ranges[canonical]

    def plan(self, values: Mapping[str, float] | None, shift: Mapping[str, float] | None) -> list[Step]:
        """What each model does, in model order; UsageError for unknown names and impossible values."""
        steps: dict[int, Step] = {}
        seen: set[str] = set()
        for kind, given in (("set", values or {}), ("shift", shift or {})):
            for name, value in given.items():
                model, canonical = self.owner(name)
                if canonical in seen:
                    raise UsageError(f"{canonical} is given more than once (set it or shift it, once)")
                seen.add(canonical)
                value = float(value)
                if not math.isfinite(value) or abs(value) > MAX_VALUE:
                    raise UsageError(f"{canonical}: {value:g} is not a number from -{MAX_VALUE} to {MAX_VALUE}")
                attribute = model.attributes.attributes[model.attributes.index(canonical)]
                if kind == "set" and not attribute.binary and (value != round(value) or not 0 <= value < attribute.n_categories):
                    raise UsageError(f"{canonical} takes a category index from 0 to {attribute.n_categories - 1}, got {value:g}")
                step = steps.setdefault(self.models.index(model), Step(model, {}, {}))
                (step.absolute if kind == "set" else step.shift)[canonical] = value
        if not steps:
            raise UsageError("nothing to edit: give values to set (--set NAME=VALUE) or to shift (--shift NAME=DELTA)")
        return [steps[i] for i in sorted(steps)]

    # ------------------------------------------------------------ editing

    def edit(
        self,
        image: ImageLike,
        values: Mapping[str, float] | None = None,
        shift: Mapping[str, float] | None = None,
        *,
        face: str | int = "all",
        align: bool = True,
    ) -> EditResult:
        """Edit the faces of one image: `values` sets attributes (0 without, 1 with, beyond exaggerates),
        `shift` moves them from the value the model estimates for each face. NoFaceError if none.
        The same as `analyse(image).render(values, shift)`, which is how it is done."""
        self.plan(values, shift)  # names and values checked before the image is read
        analysis = self.analyse(image, face=face, align=align)
        result = analysis.render(values, shift)
        return replace(result, image=_like(result.image, image), seconds=analysis.seconds + result.seconds)

    def analyse(
        self, image: ImageLike, *, face: str | int = "all", align: bool = True, name: str | None = None
    ) -> Analysis:
        """Find the faces of an image once, for any number of renders (analysis.Analysis): each model
        encodes the faces, estimates their own values and reconstructs them the first time it is needed.
        `name` is what error messages call the image (default: its path, or "the photo")."""
        from fadercli.analysis import Analysis

        started = time.perf_counter()
        photo = as_photo(image, self.limits)
        choice = facelib.parse_face_choice(str(face))
        where = name or (str(photo.path) if photo.path else "the photo")
        if align:
            found = facelib.find_faces(photo, threshold=self.threshold, max_faces=self.limits.max_faces)
            faces = facelib.select_faces(found, choice, where)
        else:
            faces = [(0, None)]
        return Analysis(self, image, photo, faces, where, time.perf_counter() - started)

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
        through the models together. An image that fails (unreadable, no face) raises, or with `on_error`
        is handed to it and skipped."""
        plan = self.plan(values, shift)
        size = max(step.model.size for step in plan)
        choice = facelib.parse_face_choice(str(face))
        batch: list[_Pending] = []
        n_faces = 0
        for image in images:
            started = time.perf_counter()
            try:
                photo = as_photo(image, self.limits)
                aligned = self._align(photo, size, choice, align)
            except FaderError as e:
                if on_error is None or isinstance(e, UsageError):
                    raise
                on_error(image, e)
                continue
            batch.append(_Pending(image, photo, aligned, time.perf_counter() - started))
            n_faces += len(aligned)
            if n_faces >= self.batch_size:
                yield from self._finish(batch, plan)
                batch, n_faces = [], 0
        if batch:
            yield from self._finish(batch, plan)

    def _finish(self, batch: list[_Pending], plan: list[Step]) -> Iterator[EditResult]:
        started = time.perf_counter()
        x = _tensor([f.crop for item in batch for f in item.aligned]).to(self.device)
        composed, estimated, values = self._edit_crops(x, plan)
        edited, reference = _unit(composed), _unit(x)
        model_seconds = (time.perf_counter() - started) / len(x)
        k = 0
        for item in batch:
            started = time.perf_counter()
            first, k = k, k + len(item.aligned)
            photo = paste_faces(item.photo, [f.alignment for f in item.aligned], edited[first:k], reference[first:k])
            results = [
                FaceResult(f.index, f.face.box if f.face else None, estimated[first + i], values[first + i])
                for i, f in enumerate(item.aligned)
            ]
            seconds = item.seconds + model_seconds * len(item.aligned) + time.perf_counter() - started
            yield EditResult(item.source, _like(photo, item.source), results, seconds)

    @torch.inference_mode()
    def _edit_crops(
        self, x: torch.Tensor, plan: list[Step], stage: Stage | None = None
    ) -> tuple[torch.Tensor, list[dict[str, float]], list[dict[str, float]]]:
        """Crops in [-1, 1] through each model in turn -> (edited crops, estimated values, values given).

        `stage(i, step, xin)` does step i on its input crops (default: analyse them, then render);
        an Analysis passes one that reuses what it analysed before."""
        size = x.shape[-1]
        current = x
        estimated: list[dict[str, float]] = [{} for _ in range(len(x))]
        given: list[dict[str, float]] = [{} for _ in range(len(x))]
        for i, step in enumerate(plan):
            model = step.model
            xin = _resize(current, model.size)
            if stage is None:
                edited, estimate, target = model.editor.edit(xin, step.absolute, step.shift)
            else:
                edited, estimate, target = stage(i, step, xin)
            current = edited if model.size == size else (current + _resize(edited - xin, size)).clamp(-1, 1)
            names = model.attributes.names
            for j, (e, t) in enumerate(zip(estimate.tolist(), target.tolist())):
                estimated[j].update(zip(names, e))
                given[j].update(zip(names, t))
        return current, estimated, given

    def _align(self, photo: Photo, size: int, choice: str | int, align: bool) -> list[facelib.AlignedFace]:
        return facelib.align_faces(photo, size=size, choice=choice, align=align, threshold=self.threshold,
                                   max_faces=self.limits.max_faces)

    # ------------------------------------------------------------ inspecting

    @torch.inference_mode()
    def inspect(self, image: ImageLike, *, face: str | int = "all", align: bool = True) -> list[FaceResult]:
        """Each face's own values, as each model estimates them, and where a classifier is at hand (the
        model's training run's, or the authors' for theirs) its probabilities for every attribute it knows."""
        photo = as_photo(image, self.limits)
        size = max(m.size for m in self.models)
        choice = facelib.parse_face_choice(str(face))
        aligned = self._align(photo, size, choice, align)
        x = _tensor([f.crop for f in aligned]).to(self.device)
        results = [FaceResult(f.index, f.face.box if f.face else None) for f in aligned]
        for model in self.models:
            estimate = model.editor.estimate(_resize(x, model.size))
            for result, e in zip(results, estimate.tolist()):
                result.estimated.update(zip(model.attributes.names, e))
            classifier = self._classifier(model)
            if classifier is not None:
                for result, p in zip(results, _probabilities(classifier, x)):
                    result.probabilities = (result.probabilities or {}) | p
        return results

    def _classifier(self, model: Model) -> LoadedModel | None:
        from fadercli import hub

        spec = hub.classifier_for(model.loaded)
        if spec is None:
            return None
        if spec not in self._classifiers:
            try:
                loaded = hub.resolve_model(spec, kind="classifier", quiet=self.quiet)
                loaded.model.to(self.device).eval()
            except (DownloadError, ModelError) as e:
                say(f"no classifier probabilities: {e}")
                loaded = None
            self._classifiers[spec] = loaded
        return self._classifiers[spec]

    # ------------------------------------------------------------ video (fadercli/video)

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
        progress: Callable[[str, int, int | None], None] | None = None,
    ) -> VideoResult:
        """Edit the faces of every frame of a clip and write it to `dst` (.mp4, .mov, .mkv: H.264;
        .webm: VP9), with the input's timestamps, rotation and audio (copied). Faces are tracked, their
        framing smoothed over time and each track's own values estimated once, so the edit does not
        flicker. `face` chooses among tracks (0 = the largest median size). `progress(stage, done,
        total)` is called per frame: stage "tracking", then "editing". NoFaceError when no frame has
        a face (unless `allow_no_face`); InputError for a truncated clip (unless `partial`)."""
        from fadercli.video.editing import edit_clip

        return edit_clip(self, src, dst, values, shift, face=face, align=align, crf=crf, preset=preset,
                         partial=partial, allow_no_face=allow_no_face, progress=progress)

    def inspect_video(
        self,
        src: str | os.PathLike,
        *,
        face: str | int = "all",
        align: bool = True,
        partial: bool = False,
        progress: Callable[[str, int, int | None], None] | None = None,
    ) -> VideoResult:
        """A clip's tracked faces: per track its frames, median box and own values (medians over the track)."""
        from fadercli.video.editing import inspect_clip

        return inspect_clip(self, src, face=face, align=align, partial=partial, progress=progress)

    # ------------------------------------------------------------ sweeping

    @torch.inference_mode()
    def sweep(
        self,
        images: ImageLike | Sequence[ImageLike],
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
        recommended range), the others kept at each face's own values. `images` may be analyses
        (Fader.analyse), whose faces are not looked for again (`align` is then theirs). Each face is encoded once per
        model; all steps are decoded in batches. Cells show the whole photo with its faces edited, or
        with `crop` the aligned faces, scaled so that their longer side is `max_size` pixels."""
        from fadercli.analysis import Analysis

        single = (str, os.PathLike, Photo, Image.Image, np.ndarray, Analysis)
        images = [images] if isinstance(images, single) else list(images)
        names = [attributes] if isinstance(attributes, str) else list(attributes)
        if not images or not names:
            raise UsageError("a sweep needs at least one image and one attribute")
        if not 2 <= steps <= MAX_STEPS:
            raise UsageError(f"a sweep takes from 2 to {MAX_STEPS} steps (frames), got {steps}")
        if not 16 <= max_size <= 4096:
            raise UsageError(f"--max-size must be from 16 to 4096 pixels, got {max_size}")
        owners = [self.owner(name) for name in names]
        names = [canonical for _, canonical in owners]
        if len(set(names)) < len(names):
            raise UsageError("an attribute is named twice")
        values = {}
        for name in names:
            lo, hi = value_range or self.slider_range(name)
            if not (abs(lo) <= MAX_VALUE and abs(hi) <= MAX_VALUE) or lo == hi:  # NaN fails too
                raise UsageError(f"a sweep range needs two different values from -{MAX_VALUE} to {MAX_VALUE}, got {lo:g}:{hi:g}")
            values[name] = np.linspace(lo, hi, steps)
        size = max(model.size for model, _ in owners)
        choice = facelib.parse_face_choice(str(face))
        photos = [image.photo if isinstance(image, Analysis) else as_photo(image, self.limits) for image in images]
        aligned = [
            image.aligned(size, choice) if isinstance(image, Analysis) else self._align(p, size, choice, align)
            for image, p in zip(images, photos)
        ]
        x = _tensor([f.crop for faces in aligned for f in faces]).to(self.device)
        analyses: dict[int, tuple] = {}
        swept = []  # per attribute: (faces, steps, S, S, 3) in [0, 1]
        for model, name in owners:
            xin = _resize(x, model.size)
            if id(model) not in analyses:
                analyses[id(model)] = model.editor.analyse(xin)
            out = model.editor.sweep(xin, name, values[name].tolist(), analysis=analyses[id(model)])
            if model.size != size:
                change = _resize((out - xin[:, None]).flatten(0, 1), size).view(len(x), steps, 3, size, size)
                out = (x[:, None] + change).clamp(-1, 1)
            swept.append(_unit(out.flatten(0, 1)).reshape(len(x), steps, size, size, 3))
        reference = _unit(x)
        if crop:
            cell = (max_size, max_size)
            originals = [resize(to_uint8(r), cell) for r in reference]
            cells = [[np.stack([resize(to_uint8(f), cell) for f in s[i]]) for s in swept] for i in range(len(x))]
        else:
            originals, cells = _photo_cells(photos, aligned, swept, reference, max_size)
        return Sweep(names, values, originals, cells)


def _photo_cells(
    photos: list[Photo],
    aligned: list[list[facelib.AlignedFace]],
    swept: list[np.ndarray],
    reference: np.ndarray,
    max_size: int,
) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Sweep cells of whole photos: each photo scaled to its cell first, its faces' changes pasted there."""
    fitted = [fit_size(p.width, p.height, max_size) for p in photos]
    box = (max(w for w, _ in fitted), max(h for _, h in fitted))
    originals, cells = [], []
    first = 0
    for photo, faces, (w, h) in zip(photos, aligned, fitted):
        small = from_array(resize(photo.rgb8(), (w, h)))
        alignments = [f.alignment.scaled(w / photo.width, h / photo.height) for f in faces]
        indices = range(first, first + len(faces))
        first += len(faces)
        originals.append(pad(small.pixels, box))
        row = []
        for s in swept:
            frames = []
            for j in range(s.shape[1]):
                edited = small.copy()
                for i, alignment in zip(indices, alignments):
                    facelib.paste(edited, alignment, s[i, j], reference[i], inplace=True)
                frames.append(pad(edited.pixels, box))
            row.append(np.stack(frames))
        cells.append(row)
    return originals, cells


@dataclass
class Sweep:
    """A sweep's images: per subject (a photo; a face with crop=True) and attribute, one image per value.

    All cells are the same size (smaller photos centred on white). `frames()` are a GIF's frames, each a
    grid of subjects (rows) x attributes (columns) at one step, the value written under each cell;
    `grid()` the static sheet, a row per subject and attribute: the original, then every step.
    """

    attributes: list[str]
    values: dict[str, np.ndarray]
    originals: list[np.ndarray]  # per subject: (h, w, 3) uint8
    cells: list[list[np.ndarray]]  # [subject][attribute]: (steps, h, w, 3) uint8

    @property
    def steps(self) -> int:
        return len(self.values[self.attributes[0]])

    def order(self, bounce: bool = False) -> list[int]:
        """Step indices frame by frame: 0 .. n-1, and with `bounce` back down to 1 (2n - 2 frames, the
        ends not repeated, so the animation loops smoothly)."""
        forward = list(range(self.steps))
        return forward + forward[-2:0:-1] if bounce else forward

    def label(self, name: str, step: int) -> str:
        values = self.values[name]
        # Enough decimals that neighbouring steps read differently (and GIF frames never coincide).
        decimals = max(2, min(6, math.ceil(-math.log10(abs(values[1] - values[0]))) + 1))
        return f"{name} {values[step]:.{decimals}f}"

    def frames(self, bounce: bool = False) -> list[Image.Image]:
        frames = []
        for j in self.order(bounce):
            rows = [[attribute[j] for attribute in subject] for subject in self.cells]
            captions = [[self.label(name, j) for name in self.attributes] for _ in self.cells]
            frames.append(tile(rows, captions))
        return frames

    def grid(self) -> Image.Image:
        rows, captions = [], []
        for original, subject in zip(self.originals, self.cells):
            for name, steps in zip(self.attributes, subject):
                rows.append([original, *steps])
                captions.append(["original", *(self.label(name, j) for j in range(self.steps))])
        return tile(rows, captions)

    def save(self, path: str | os.PathLike, *, fps: float = 8.0, bounce: bool = False) -> Path:
        """`.gif`: the animation (looping); `.mp4`, `.webm`, ...: the animation as video (full colour,
        H.264 or VP9; see fadercli/video); any other image format: the static grid. Written atomically."""
        from fadercli.video import is_writable_video

        path = Path(path)
        if path.suffix.lower() == ".gif" or is_writable_video(path):
            if not path.parent.is_dir():
                raise OutputError(f"cannot write {path}: no such folder {path.parent}")
            if is_writable_video(path):
                from fadercli.video.clips import save_video

                save_video([np.asarray(f) for f in self.frames(bounce)], path, fps=fps)
            else:
                save_gif(self.frames(bounce), path, fps=fps)
        elif image_format(path) is None:
            raise UsageError(f"{path}: give a .gif (animation) or an image file name such as .png or .jpg (grid)")
        else:
            save_image(from_array(np.asarray(self.grid())), path)
        return path

    def encode(self, format: str = "gif", *, fps: float = 8.0, bounce: bool = False) -> bytes:
        """The bytes `save` writes: "gif" the animation, another image format (png, jpeg, ...) the grid."""
        if format.lower() == "gif":
            return gif_bytes(self.frames(bounce), fps=fps)
        return encode_image(from_array(np.asarray(self.grid())), format)


# ---------------------------------------------------------------- images in and out


def as_photo(image: ImageLike, limits: Limits = DEFAULT_LIMITS) -> Photo:
    """A Photo from a file path (read within `limits`), a PIL image, an H x W (x 3) uint8/uint16
    array, or a Photo."""
    if isinstance(image, Photo):
        return image
    if isinstance(image, Image.Image):
        return from_pil(image)
    if isinstance(image, np.ndarray):
        return from_array(image)
    if isinstance(image, (str, os.PathLike)):
        return read_image(image, limits=limits)
    raise TypeError(f"cannot read an image from a {type(image).__name__}")


def _like(photo: Photo, source: ImageLike) -> Photo | Image.Image | np.ndarray:
    """The edited photo as the same kind of thing as its source (a Photo for files)."""
    if isinstance(source, Image.Image):
        return to_pil(photo)
    if isinstance(source, np.ndarray):
        return photo.pixels[..., 0] if source.ndim == 2 else photo.pixels
    return photo


def paste_faces(
    photo: Photo, alignments: Sequence[facelib.Alignment], edited: Sequence[np.ndarray], reference: Sequence[np.ndarray]
) -> Photo:
    """Each face's change (edited - reference crops, [0, 1]) pasted back, in order, into a copy of the photo."""
    out = photo
    for alignment, e, r in zip(alignments, edited, reference):
        out = facelib.paste(out, alignment, e, r, inplace=out is not photo)
    return out


def _tensor(crops: Sequence[np.ndarray]) -> torch.Tensor:
    """H x W x 3 float crops in [0, 1] -> (B, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).mul(2).sub(1).contiguous()


def _unit(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> B x H x W x 3 float32 in [0, 1]."""
    return x.add(1).div(2).permute(0, 2, 3, 1).float().cpu().numpy()


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _probabilities(classifier: LoadedModel, x: torch.Tensor) -> list[dict[str, float | list[float]]]:
    attributes = classifier.attributes
    logits = classifier.model(_resize(x, classifier.config.img_size))
    out: list[dict] = [{} for _ in range(len(x))]
    for a, start in zip(attributes, attributes.offsets()):
        p = logits[:, start : start + a.n_categories].softmax(1)
        for record, row in zip(out, p.tolist()):
            record[a.name] = row[1] if a.binary else row
    return out

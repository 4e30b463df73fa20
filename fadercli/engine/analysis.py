"""A photo analysed once, rendered with any number of values: what a slider needs.

    analysis = fader.analyse("photo.jpg")            # faces found once
    analysis.estimates()                             # each face's own values, per model
    analysis.render({"Smiling": 1.5}).image          # a Photo: the same pixels as fader.edit's
    analysis.render(faces={0: {"Smiling": 0.2}}, max_size=800)   # one face; a preview
    render_together([a1, a2, ...], {"Smiling": 1.5})   # several photos, their faces in one batch

Fader.analyse finds and chooses the faces; each model encodes every face, estimates its own values
and decodes its reconstruction there the first time a render (or `estimates`) needs that model, and
keeps them. A render then costs one decode per model named, the composition and the paste-back.
Fader.edit and `fader edit` render analyses (render_together), `fader serve` renders one while a
slider moves: the web page, the HTTP API and `fader edit` take this one path to their pixels.

Chained models (each attribute goes to the first model that edits it) see the face as the model
before them left it: their analyses and results are memoised by the values that made their input,
so moving one slider re-runs only the models from the one it belongs to on.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fadercli import faces as facelib
from fadercli.engine.chain import Chain, Model, Step
from fadercli.engine.results import EditResult, FaceResult
from fadercli.errors import UsageError
from fadercli.media.grids import fit_size, resize
from fadercli.media.images import Photo, from_array
from fadercli.net.tensors import from_crops, to_unit
from fadercli.net.tensors import resize as resize_crops

MEMO_ENTRIES = 6  # chained models' analyses and results kept (a few renders' worth)
PREVIEW_SIZES = 2  # downscaled copies of the photo kept for previews


@dataclass
class _Preview:
    """The photo downscaled for previews of at most `max_size` pixels, and the scale factors."""

    photo: Photo
    sx: float
    sy: float


class Analysis:
    """One photo's faces, ready to be rendered with any values (made by Fader.analyse) by a chain of
    models (shared: models loaded into it later are seen too).

    Thread-safe: renders of one analysis run one at a time."""

    def __init__(
        self,
        chain: Chain,
        source: Any,
        photo: Photo,
        faces: list[tuple[int, facelib.Face | None]],
        where: str,
        seconds: float,
    ):
        self.chain = chain
        self.source = source  # what was given: a path, a Photo, a PIL image or an array
        self.photo = photo
        self.where = where  # what error messages call the photo
        self.seconds = seconds  # the time finding the faces took
        self._faces = faces  # (index among the photo's faces, the face; None for a whole-image crop)
        self._aligned: dict[int, list[facelib.AlignedFace]] = {}
        self._crops: dict[int, torch.Tensor] = {}
        self._own: dict[tuple[int, int], tuple] = {}  # (model, size) -> every face's analysis
        self._memo: OrderedDict[tuple, tuple] = OrderedDict()
        self._previews: OrderedDict[int, _Preview] = OrderedDict()
        self._lock = threading.RLock()

    # ------------------------------------------------------------ faces

    @property
    def indices(self) -> list[int]:
        """The analysed faces' indices among the photo's faces (largest first)."""
        return [index for index, _ in self._faces]

    @property
    def faces(self) -> list[FaceResult]:
        """Each analysed face's index and box (None for a whole-image crop)."""
        return [FaceResult(index, face.box if face else None) for index, face in self._faces]

    def aligned(self, size: int, choice: str | int = "all") -> list[facelib.AlignedFace]:
        """The chosen faces aligned at `size` (as faces.align_faces would align them)."""
        with self._lock:
            if size not in self._aligned:
                if self._faces[0][1] is None:
                    self._aligned[size] = facelib.align_faces(self.photo, size=size, align=False)
                else:
                    self._aligned[size] = [
                        facelib.AlignedFace(i, f, a, facelib.crop(self.photo, a))
                        for i, f in self._faces
                        for a in [facelib.alignment_for(f, size)]
                    ]
            aligned = self._aligned[size]
        chosen = facelib.pick([(i, a) for (i, _), a in zip(self._faces, aligned)], choice, self.where, self._counted)
        return [a for _, a in chosen]

    @property
    def _counted(self) -> str:
        return "analysed" if len(self._faces) > 1 or self._faces[0][0] != 0 else "found"

    def _row(self, index: int) -> int:
        """The row of the analysed face with this index among the photo's faces."""
        [(row, _)] = facelib.pick(
            [(i, row) for row, (i, _) in enumerate(self._faces)], index, self.where, self._counted
        )
        return row

    def _crop_tensor(self, size: int) -> torch.Tensor:
        if size not in self._crops:
            self._crops[size] = from_crops([f.crop for f in self.aligned(size)]).to(self.chain.device)
        return self._crops[size]

    # ------------------------------------------------------------ what the models see

    def _analysis_of(self, model: Model, size: int) -> tuple:
        """The model's analysis of every face's own crop (aligned at `size`): features, estimate, recon."""
        key = (id(model), size)
        if key not in self._own:
            self._own[key] = model.editor.analyse(resize_crops(self._crop_tensor(size), model.size))
        return self._own[key]

    def estimates(self) -> list[FaceResult]:
        """Each face's index, box and own values as each model estimates them (each at its own size,
        as an edit with that model alone sees the face)."""
        with self._lock:
            results = self.faces
            for model in self.chain.models:
                _, estimate, _ = self._analysis_of(model, model.size)
                for result, row in zip(results, estimate.tolist()):
                    result.estimated.update(zip(model.attributes.names, row))
            return results

    def _stage(self, size: int, rows: tuple[int, ...], plan: list[Step]):
        """Chain.run's stage for these faces: each step's analysis and result memoised by
        what determines them (the faces, the crop size and the steps up to it with their values)."""
        everyone = rows == tuple(range(len(self._faces)))

        def describe(step: Step) -> tuple:
            return id(step.model), tuple(sorted(step.absolute.items())), tuple(sorted(step.shift.items()))

        def stage(i: int, step: Step, xin: torch.Tensor):
            key = (size, rows, tuple(describe(s) for s in plan[: i + 1]))
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
            editor = step.model.editor
            if i == 0:
                analysis = self._analysis_of(step.model, size)
                if not everyone:
                    picked = list(rows)
                    features, estimate, recon = analysis
                    # Rows picked by index come back channels-first: put them back as the encoder left them.
                    features = [f[picked].contiguous(memory_format=torch.channels_last) for f in features]
                    analysis = features, estimate[picked], recon[picked]
                result = editor.render(xin, analysis, step.absolute, step.shift)
            else:
                before = (size, rows, key[2][:i], id(step.model))  # this model's input is the last one's output
                if before not in self._memo:
                    self._remember(before, editor.analyse(xin))
                result = editor.render(xin, self._memo[before], step.absolute, step.shift)
            if len(plan) > 1 and i < len(plan) - 1:  # only what later renders may find again
                self._remember(key, result)
            return result

        return stage

    def _remember(self, key: tuple, value: tuple) -> None:
        self._memo[key] = value
        while len(self._memo) > MEMO_ENTRIES:
            self._memo.popitem(last=False)

    # ------------------------------------------------------------ rendering

    def render(
        self,
        values: Mapping[str, float] | None = None,
        shift: Mapping[str, float] | None = None,
        *,
        faces: Mapping[int, Mapping[str, float]] | None = None,
        max_size: int | None = None,
    ) -> EditResult:
        """The photo with its faces edited: `values` / `shift` for every analysed face (as Fader.edit),
        or `faces` = {index: values} for some faces (the others stay as they are). Attributes not named
        keep each face's estimate. With `max_size`, a preview: the change pasted into a copy of the photo
        downscaled so that its longer side is at most `max_size` (RGB, 8 bits); without, the full photo
        in its own mode: the pixels `fader edit` writes."""
        started = time.perf_counter()
        if faces is not None and (values or shift):
            raise UsageError("give values for every face or per-face values, not both")
        if max_size is not None and max_size < 16:
            raise UsageError(f"max_size must be at least 16 pixels, got {max_size}")
        if faces is None:
            self.chain.plan(values, shift)  # a render of every face must edit something, as fader edit
            groups = {(_frozen(values), _frozen(shift)): tuple(range(len(self._faces)))}
        else:
            groups: dict[tuple, tuple[int, ...]] = {}
            for index in sorted(faces):
                given = faces[index]
                row = self._row(int(index))
                if given:
                    self.chain.plan(given, None)  # names and values checked before any work
                    key = (_frozen(given), ())
                    groups[key] = (*groups.get(key, ()), row)
        with self._lock:
            pasted: list[tuple[int, facelib.Alignment, np.ndarray, np.ndarray]] = []
            results: list[FaceResult] = []
            for (given, shifted), rows in groups.items():
                plan = self.chain.plan(dict(given), dict(shifted))
                size = max(step.model.size for step in plan)
                x = self._crop_tensor(size)
                x = x if len(rows) == len(self._faces) else x[list(rows)]
                composed, estimated, targets = self.chain.run(x, plan, self._stage(size, rows, plan))
                edited, reference = to_unit(composed), to_unit(x)
                aligned = self.aligned(size)
                for k, row in enumerate(rows):
                    index, face = self._faces[row]
                    pasted.append((row, aligned[row].alignment, edited[k], reference[k]))
                    results.append(FaceResult(index, face.box if face else None, estimated[k], targets[k]))
            pasted.sort(key=lambda item: item[0])  # faces pasted in the photo's order, as fader edit does
            results.sort(key=lambda r: r.index)
            base, alignments = self.photo, [a for _, a, _, _ in pasted]
            if max_size is not None and max(self.photo.width, self.photo.height) > max_size:
                preview = self._preview(max_size)
                base, alignments = preview.photo, [a.scaled(preview.sx, preview.sy) for a in alignments]
            image = facelib.paste_faces(base, alignments, [e for *_, e, _ in pasted], [r for *_, r in pasted])
            if image is base:
                image = base.copy()
        return EditResult(self.source, image, results, time.perf_counter() - started)

    def _preview(self, max_size: int) -> _Preview:
        if max_size not in self._previews:
            w, h = fit_size(self.photo.width, self.photo.height, max_size)
            small = from_array(resize(self.photo.rgb8(), (w, h)))
            self._previews[max_size] = _Preview(small, w / self.photo.width, h / self.photo.height)
            while len(self._previews) > PREVIEW_SIZES:
                self._previews.popitem(last=False)
        self._previews.move_to_end(max_size)
        return self._previews[max_size]

    @property
    def nbytes(self) -> int:
        """About how much memory the analysis holds (the photo, crops, analyses, previews)."""

        def size(value) -> int:
            if isinstance(value, torch.Tensor):
                return value.element_size() * value.nelement()
            if isinstance(value, np.ndarray):
                return value.nbytes
            if isinstance(value, (list, tuple)):
                return sum(size(v) for v in value)
            return 0

        with self._lock:
            total = size(self.photo.pixels) + size(self.photo.alpha)
            total += sum(size([f.crop for f in faces]) for faces in self._aligned.values())
            total += size(list(self._crops.values())) + size(list(self._own.values())) + size(list(self._memo.values()))
            total += sum(size(p.photo.pixels) for p in self._previews.values())
            return total


def _frozen(values: Mapping[str, float] | None) -> tuple[tuple[str, float], ...]:
    return tuple((name, float(value)) for name, value in (values or {}).items())


def render_together(
    analyses: list[Analysis], values: Mapping[str, float] | None, shift: Mapping[str, float] | None
) -> list[EditResult]:
    """Every face of several analysed photos edited alike, the faces of all of them through the
    models in one batch (as `fader edit` edits a folder); one photo is `Analysis.render`'s."""
    if len(analyses) == 1:
        return [analyses[0].render(values, shift)]
    started = time.perf_counter()
    chain = analyses[0].chain
    plan = chain.plan(values, shift)
    size = max(step.model.size for step in plan)
    x = torch.cat([a._crop_tensor(size) for a in analyses])
    composed, estimated, targets = chain.run(x, plan)
    edited, reference = to_unit(composed), to_unit(x)
    model_seconds = (time.perf_counter() - started) / len(x)
    out, first = [], 0
    for a in analyses:
        started = time.perf_counter()
        rows = range(first, first + len(a._faces))
        image = facelib.paste_faces(
            a.photo, [f.alignment for f in a.aligned(size)], edited[first : rows.stop], reference[first : rows.stop]
        )
        faces = [
            FaceResult(index, face.box if face else None, estimated[k], targets[k])
            for (index, face), k in zip(a._faces, rows)
        ]
        out.append(EditResult(a.source, image, faces, model_seconds * len(rows) + time.perf_counter() - started))
        first = rows.stop
    return out

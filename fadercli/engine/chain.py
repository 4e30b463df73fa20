"""Fader models on a device, chained: each attribute goes to the first model that edits it, and each
model edits the face crops as the model before it left them.

A `Chain` checks what an edit asks for (`plan`: one Step per model, names and values checked) and
runs the steps on a batch of crops (`run`), resizing crops to each model's size and carrying a
smaller model's change back to the crops' size. How a step is done is a `Stage`: by default each
model analyses its crops and renders them (editor.Editor); a photo's Analysis passes one that
reuses what it analysed before, and video (clips and a camera's live frames) one that uses each face
track's known values (`at_own_values`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from fadercli import say
from fadercli.attributes import AttributeSet
from fadercli.devices import Precision, pick_precision
from fadercli.engine import plans
from fadercli.errors import DownloadError, ModelError, UsageError
from fadercli.net.editor import Editor, compose
from fadercli.net.model import AutoEncoder
from fadercli.net.tensors import resize
from fadercli.weights.format import LoadedModel, default_slider_ranges, require_kind

DEFAULT_BATCH = 16  # faces per pass through the models: enough to keep a CPU busy, little memory


@dataclass(eq=False)
class Model:
    """A Fader model ready to edit crops (see net.editor.Editor)."""

    loaded: LoadedModel
    editor: Editor

    @property
    def attributes(self) -> AttributeSet:
        return self.loaded.attributes

    @property
    def size(self) -> int:
        return self.loaded.config.img_size


@dataclass
class Step:
    """One model's part of an edit: the attributes it sets and those it shifts."""

    model: Model
    absolute: dict[str, float]
    shift: dict[str, float]


# One model's part of an edit on its input crops: (i, step, crops) -> (edited, estimated, target values).
Stage = Callable[[int, Step, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


class Chain:
    """Models on one device, in one precision (devices.Precision; float32 unless given); `models` may
    grow (a server loads models later), shared by reference."""

    def __init__(
        self,
        models: Sequence[Model | LoadedModel | AutoEncoder],
        device: torch.device,
        batch_size: int = DEFAULT_BATCH,
        precision: Precision | None = None,
    ):
        if not models:
            raise UsageError("no model given")
        if batch_size < 1:
            raise UsageError(f"the batch size must be at least 1, got {batch_size}")
        self.device = device
        self.batch_size = batch_size
        self.precision = precision or pick_precision("fp32", device)
        self.models = [self.ready(m) for m in models]
        self._classifiers: dict[str, LoadedModel | None] = {}

    def ready(self, model: Model | LoadedModel | AutoEncoder) -> Model:
        """A model made ready to edit on this chain's device (one already made ready is shared)."""
        if isinstance(model, Model):
            return model
        if isinstance(model, AutoEncoder):
            attributes = AttributeSet.from_pairs(model.config.attributes)
            model = LoadedModel("fader", model, model.config, default_slider_ranges(attributes))
        require_kind(str(model.path or "model"), model.kind, "fader")
        return Model(model, Editor(model.model, self.device, batch_size=self.batch_size, precision=self.precision))

    # ------------------------------------------------------------ attributes

    @property
    def attributes(self) -> list[str]:
        """Every attribute the models edit, in model order."""
        return [name for m in self.models for name in m.attributes.names]

    @property
    def size(self) -> int:
        """The crop size faces are aligned at: the largest model's."""
        return max(m.size for m in self.models)

    def owner(self, name: str) -> tuple[Model, str]:
        """The first model that edits attribute `name` (case-insensitive), and the name as it spells it."""
        index, canonical = plans.owner([m.attributes for m in self.models], name)
        return self.models[index], canonical

    def slider_range(self, name: str) -> tuple[float, float]:
        """The recommended range of an attribute (the model's metadata, weights.format's policy)."""
        model, canonical = self.owner(name)
        return model.loaded.slider_ranges[canonical]

    def plan(self, values: Mapping[str, float] | None, shift: Mapping[str, float] | None) -> list[Step]:
        """What each model does, in model order; UsageError for unknown names, impossible values, or
        nothing to do."""
        planned = plans.plan([m.attributes for m in self.models], values, shift)
        return [Step(self.models[i], absolute, shifted) for i, absolute, shifted in planned]

    # ------------------------------------------------------------ running the steps

    @torch.inference_mode()
    def run(
        self, x: torch.Tensor, plan: list[Step], stage: Stage | None = None
    ) -> tuple[torch.Tensor, list[dict[str, float]], list[dict[str, float]]]:
        """Crops in [-1, 1] through each model in turn -> (edited crops, estimated values, values given).

        `stage(i, step, xin)` does step i on its input crops (default: analyse them, then render)."""
        size = x.shape[-1]
        current = x
        estimated: list[dict[str, float]] = [{} for _ in range(len(x))]
        given: list[dict[str, float]] = [{} for _ in range(len(x))]
        for i, step in enumerate(plan):
            model = step.model
            xin = resize(current, model.size)
            if stage is None:
                edited, estimate, target = model.editor.edit(xin, step.absolute, step.shift)
            else:
                edited, estimate, target = stage(i, step, xin)
            current = edited if model.size == size else (current + resize(edited - xin, size)).clamp(-1, 1)
            names = model.attributes.names
            for j, (e, t) in enumerate(zip(estimate.tolist(), target.tolist())):
                estimated[j].update(zip(names, e))
                given[j].update(zip(names, t))
        return current, estimated, given

    @torch.inference_mode()
    def own_values(self, x: torch.Tensor, plan: list[Step]) -> list[dict[str, float]]:
        """Each crop's own values as an edit by `plan` estimates them (each model seeing the crop as
        the models before it left it), without the last model's two decodes, which no estimate
        needs: what a video track's crops are measured by."""

        def stage(i: int, step: Step, xin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            if i < len(plan) - 1:
                return step.model.editor.edit(xin, step.absolute, step.shift)
            estimate = step.model.editor.estimate(xin)
            return xin, estimate, estimate

        estimated = []
        for start in range(0, len(x), self.batch_size):  # batches as photos are edited in
            estimated += self.run(x[start : start + self.batch_size], plan, stage)[1]
        return estimated

    @torch.inference_mode()
    def estimates(self, x: torch.Tensor, quiet: bool = True) -> tuple[list[dict[str, float]], list[dict | None]]:
        """Each crop's own values as each model estimates them (each seeing the crop at its own size),
        and where a classifier is at hand (the model's training run's, or the authors' for theirs) its
        probabilities for every attribute it knows (None where there is none)."""
        estimated: list[dict[str, float]] = [{} for _ in range(len(x))]
        probabilities: list[dict | None] = [None] * len(x)
        for model in self.models:
            estimate = model.editor.estimate(resize(x, model.size))
            for record, e in zip(estimated, estimate.tolist()):
                record.update(zip(model.attributes.names, e))
            classifier = self._classifier(model, quiet)
            if classifier is not None:
                for j, p in enumerate(_probabilities(classifier, x)):
                    probabilities[j] = (probabilities[j] or {}) | p
        return estimated, probabilities

    def _classifier(self, model: Model, quiet: bool) -> LoadedModel | None:
        from fadercli.weights import hub

        spec = hub.classifier_for(model.loaded)
        if spec is None:
            return None
        if spec not in self._classifiers:
            try:
                loaded = hub.resolve_model(spec, kind="classifier", quiet=quiet)
                loaded.model.to(self.device).eval()
            except (DownloadError, ModelError) as e:
                say(f"no classifier probabilities: {e}", logging.WARNING)
                loaded = None
            self._classifiers[spec] = loaded
        return self._classifiers[spec]


def planned_values(plan: list[Step], own: dict[str, float]) -> dict[str, float]:
    """The values a face whose own values are `own` is edited to: its own, with the plan's set and shifted."""
    out = {}
    for step in plan:
        for name in step.model.attributes.names:
            out[name] = step.absolute.get(name, own[name] + step.shift.get(name, 0.0))
    return out


def at_own_values(own: list[dict[str, float]]):
    """A Chain stage that edits each face at its own known values (a video track's) instead of values
    estimated from this one crop; the reconstruction and the edit decoded in one batch."""

    def stage(i: int, step: Step, xin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        editor = step.model.editor
        estimate = torch.tensor([[e[n] for n in step.model.attributes.names] for e in own], device=xin.device)
        target = editor.values_for(estimate, step.absolute, step.shift)
        features = editor.encode(xin)
        both = editor.decode([torch.cat([f, f]) for f in features], torch.cat([estimate, target]))
        recon, decoded = both[: len(xin)], both[len(xin) :]
        return compose(xin, recon, decoded), estimate, target

    return stage


def _probabilities(classifier: LoadedModel, x: torch.Tensor) -> list[dict[str, float | list[float]]]:
    attributes = classifier.attributes
    logits = classifier.model(resize(x, classifier.config.img_size))
    out: list[dict] = [{} for _ in range(len(x))]
    for a, start in zip(attributes, attributes.offsets()):
        p = logits[:, start : start + a.n_categories].softmax(1)
        for record, row in zip(out, p.tolist()):
            record[a.name] = row[1] if a.binary else row
    return out

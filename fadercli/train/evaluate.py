"""Judging a Fader model the paper's way: an attribute classifier trained separately on the same
training split decides whether edited faces show the requested attribute (swap accuracy), beside
reconstruction quality (PSNR).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F

from fadercli.attributes import AttributeSet
from fadercli.devices import Precision
from fadercli.net.model import AutoEncoder, Classifier, ClassifierConfig
from fadercli.net.tensors import from_uint8


def one_hot(attributes: AttributeSet, labels: torch.Tensor) -> torch.Tensor:
    """(B, n_attributes) category indices -> (B, n_channels) decoder/classifier targets."""
    parts = [F.one_hot(labels[:, i], a.n_categories) for i, a in enumerate(attributes)]
    return torch.cat(parts, 1).float()


def attribute_loss(attributes: AttributeSet, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per attribute over its own categories, averaged over attributes."""
    losses = []
    for i, (a, start) in enumerate(zip(attributes, attributes.offsets())):
        losses.append(F.cross_entropy(logits[:, start : start + a.n_categories], labels[:, i]))
    return torch.stack(losses).mean()


def predict(attributes: AttributeSet, logits: torch.Tensor) -> torch.Tensor:
    """(B, n_channels) logits -> (B, n_attributes) predicted category indices."""
    return torch.stack(
        [logits[:, s : s + a.n_categories].argmax(1) for a, s in zip(attributes, attributes.offsets())], 1
    )


def judge_config(attributes: AttributeSet, img_size: int) -> ClassifierConfig:
    """The evaluation classifier: narrow, so that a few thousand steps stay cheap beside training,
    yet right on 99% of clean faces with thin frames and small smiles (docs/experiments.md)."""
    return ClassifierConfig(attributes.pairs(), img_size=img_size, init_fm=16, max_fm=128, hid_dim=128, dropout=0.1)


def guide_config(attributes: AttributeSet, img_size: int) -> ClassifierConfig:
    """The classifier behind the training loss: another architecture than the judge's (wider head,
    more dropout, noisy inputs), so that what the decoder learns to please is not what scores it."""
    return ClassifierConfig(attributes.pairs(), img_size=img_size, init_fm=16, max_fm=128, hid_dim=256, dropout=0.2)


WARM_STEPS = 50  # classifier learning-rate warm-up (at most a tenth of the steps)
PROBE_STEPS = 20  # steps timed to fit the classifiers into their share of a run's time


def _shifted(x: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by up to `shift` pixels each way, its edges repeated: thin strokes seen at
    every sub-position of the stride-2 convolutions."""
    if shift == 0:
        return x
    padded = F.pad(x, (shift,) * 4, mode="replicate")
    h, w = x.shape[-2:]
    offsets = torch.randint(0, 2 * shift + 1, (len(x), 2), generator=generator)
    out = torch.empty_like(x)
    for dy in range(2 * shift + 1):
        for dx in range(2 * shift + 1):
            rows = ((offsets[:, 0] == dy) & (offsets[:, 1] == dx)).nonzero()[:, 0].to(x.device)
            out[rows] = padded[rows, :, dy : dy + h, dx : dx + w]
    return out


def train_classifiers(
    attributes: AttributeSet,
    configs: list[tuple[ClassifierConfig, float]],
    batches: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    *,
    steps: int,
    device: torch.device,
    lr: float = 3e-3,
    shift: int = 1,
    seed: int = 0,
    seconds: float | None = None,
    precision: Precision | None = None,
) -> tuple[list[Classifier], int]:
    """Fit classifiers, given as (config, input noise std), on the same `batches(step) -> (images in
    [-1, 1], labels)`, each image moved by up to `shift` pixels; returns them frozen, in eval mode,
    and the steps they took: `steps`, or fewer where `seconds` would not hold them (the pace of the
    first PROBE_STEPS decides, so that a run's classifiers cost a fixed share of its budget), their
    forward passes in `precision` (float32 unless given), their losses in float32."""
    generator = torch.Generator().manual_seed(seed)
    warm = max(1, min(steps // 10, WARM_STEPS))
    total = steps

    def schedule(s: int) -> float:  # warm-up, then cosine to 0 over however many steps there are
        return min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / max(total, 1)))

    models, optimisers = [], []
    for config, _ in configs:
        clf = Classifier(config).to(device).train()
        opt = torch.optim.Adam(clf.parameters(), lr=lr, betas=(0.9, 0.999))
        models.append(clf)
        optimisers.append((opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)))
    cast = precision.autocast if precision is not None else nullcontext
    started, step = time.monotonic(), 0
    while step < total:
        x, y = batches(step)
        x = _shifted(x, shift, generator)
        for clf, (opt, sched), (_, noise) in zip(models, optimisers, configs):
            with cast():
                logits = clf(x + noise * torch.randn_like(x) if noise else x)
            loss = attribute_loss(attributes, logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        step += 1
        if seconds is not None and step == min(PROBE_STEPS, total):
            per_step = (time.monotonic() - started) / step
            total = max(step, min(steps, int(seconds / per_step)))
    return [clf.eval().requires_grad_(False) for clf in models], total


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [-1, 1] (peak-to-peak 2)."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(4.0 / mse)


# Below this accuracy on clean validation faces, a classifier's verdict on edits is not worth much.
RELIABLE_ACCURACY = 0.98
# An edit counts only where it looks like the real thing: a classifier tips over for a blurred
# smudge of glasses or a red patch of smile (docs/experiments.md). Sharpness: the edited faces'
# edge strength where the edits change them, against real faces that have the target value, in
# the same places (edge_ratio). A pixel is changed by an edit beyond CHANGED ([-1, 1] units); an
# edit outside what all but REAL_TAIL of the real faces show does not count as a success, and a
# direction whose median is outside SHARPNESS_RANGE is flagged (blurred below it, leftovers above).
CHANGED = 0.1
REAL_TAIL = 0.02
SHARPNESS_RANGE = (0.7, 1.5)
# Below this many faces, a direction's swap accuracy is too uncertain to stand on its own.
FEW_FACES = 50


def directions(attribute) -> list[tuple[str, int]]:
    """(name, target category) of each way an edit can go: adding and removing a binary attribute,
    or "to <category>" for each category of a categorical one."""
    if attribute.binary:
        return [("adding", 1), ("removing", 0)]
    return [(f"to {c}", c) for c in range(attribute.n_categories)]


@torch.no_grad()
def evaluate(
    ae: AutoEncoder,
    clf: Classifier,
    attributes: AttributeSet,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    device: torch.device,
) -> dict:
    """Scores over `batches` of (uint8 images, category labels), per attribute and direction (an
    average over directions would hide the one that fails):

    swap_accuracy: {attribute: {direction: share}}: of the faces that have another value, the
        share that the classifier judges to show the target value after `fader edit` sets the
        attribute to it, everything else as `fader edit` does it (estimated values, composed edit),
        and whose edit is as sharp as real faces with that value (edge_ratio); None where no face
        has another value (every figure that has nothing to measure is None, null in JSON);
    swap_accuracy_classifier: the same by the classifier alone;
    swap_accuracy_decoded: the same for the bare decode from the true labels (the paper's measure);
    sharpness: {attribute: {direction: median edge_ratio of the edits}};
    swap_faces: {attribute: {direction: number of faces}} behind those shares;
    classifier_accuracy: {attribute: share}: the classifier's own accuracy on the unedited faces,
        which bounds how far its verdicts on edits can be trusted;
    psnr: reconstruction PSNR of the decode from the true labels (dB); n_faces;
    warnings: one line for each figure that is not reliable, and why (see `warnings`).
    """
    from fadercli.net.editor import Editor

    editor = Editor(ae, device)
    names = attributes.names
    keys = {a.name: directions(a) for a in attributes}
    # faces, composed (classifier and sharp enough), decoded, composed (classifier alone)
    counts = {name: {d: np.zeros(4) for d, _ in keys[name]} for name in names}
    sharpness: dict[str, dict[str, list[torch.Tensor]]] = {name: {d: [] for d, _ in keys[name]} for name in names}
    clf_correct = np.zeros(len(attributes))
    psnrs, n = [], 0
    for images, labels in batches:
        n += len(images)
        x = from_uint8(images, device)
        y = torch.from_numpy(labels).to(device)
        features, estimate, recon = editor.analyse(x)  # the model in eval mode, as `fader edit` runs it
        psnrs.append(psnr(editor.decode(features, y.float()), x).cpu())
        clf_correct += (predict(attributes, clf(x)) == y).sum(0).cpu().numpy()
        for i, a in enumerate(attributes):
            for direction, category in keys[a.name]:
                found = _judge_direction(editor, clf, attributes, x, y, (features, estimate, recon), i, category)
                if found is not None:
                    sharpness[a.name][direction].append(found[0])
                    counts[a.name][direction] += found[1]

    def share(column: int) -> dict:
        return {
            name: {d: round(float(c[column] / c[0]), 4) if c[0] else None for d, c in by.items()}
            for name, by in counts.items()
        }

    all_psnr = torch.cat(psnrs) if psnrs else torch.zeros(0)

    def median(values: list[torch.Tensor]) -> float:
        values = torch.cat(values) if values else torch.zeros(0)
        values = values[values.isfinite()]
        return round(float(values.median()), 3) if len(values) else None

    result = {
        "swap_accuracy": share(1),
        "swap_accuracy_classifier": share(3),
        "swap_accuracy_decoded": share(2),
        "sharpness": {name: {d: median(v) for d, v in by.items()} for name, by in sharpness.items()},
        "swap_faces": {name: {d: int(c[0]) for d, c in by.items()} for name, by in counts.items()},
        "classifier_accuracy": dict(zip(names, (clf_correct / max(n, 1)).round(4).tolist())),
        "psnr": round(float(all_psnr.mean()), 3) if n else None,
        "n_faces": n,
    }
    result["warnings"] = warnings(result)
    return result


def _judge_direction(
    editor,
    clf: Classifier,
    attributes: AttributeSet,
    x: torch.Tensor,
    y: torch.Tensor,
    analysis: tuple,
    i: int,
    category: int,
) -> tuple[torch.Tensor, list[int]] | None:
    """The faces of a batch that do not have `category` of attribute i, set to it: the edits'
    sharpness, and [faces, composed (classifier and sharp enough), decoded, composed (classifier
    alone)] counts of what the classifier sees; None if every face has it already."""
    from fadercli.net.editor import compose

    features, estimate, recon = analysis
    rows = (y[:, i] != category).nonzero()[:, 0]
    if len(rows) == 0:
        return None
    picked = [f[rows] for f in features]
    target = y[rows].float()
    target[:, i] = category
    decoded = editor.decode(picked, target)
    values = estimate[rows].clone()
    values[:, i] = category
    edited = compose(x[rows], recon[rows], editor.decode(picked, values))
    seen = predict(attributes, clf(edited))[:, i] == category
    sharp, real = edge_ratio(x[rows], edited, x[y[:, i] == category])
    counts = [
        len(rows),
        (seen & real).sum().item(),
        (predict(attributes, clf(decoded))[:, i] == category).sum().item(),
        seen.sum().item(),
    ]
    return sharp.cpu(), counts


def _edges(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W) edge strength: the gradient magnitude of the grey image (central differences)."""
    grey = F.pad(x.float().mean(1, keepdim=True), (1, 1, 1, 1), mode="replicate")
    gx = grey[..., 1:-1, 2:] - grey[..., 1:-1, :-2]
    gy = grey[..., 2:, 1:-1] - grey[..., :-2, 1:-1]
    return (gx.pow(2) + gy.pow(2)).sqrt()[:, 0]


def edge_ratio(x: torch.Tensor, edited: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per edited face, its edge strength where the edits of this batch change faces, against the
    mean of `real` faces (that have the target value) in the same place: about 1 for an edit that
    draws what real faces show, well below for a blurred one, above for leftovers and artefacts;
    and whether each edit looks real. Where the target value brings detail (glasses drawn, a smile
    opened) an edit must be as sharp as all but REAL_TAIL of the real faces; where it takes detail
    away (glasses removed) it must not keep more than all but REAL_TAIL of them (leftovers). NaN,
    and True, where nothing changed or no real face is at hand. Faces are aligned, so an attribute
    sits in the same place in all of them; the region is the batch's, so every face is measured alike."""
    changed = ((edited - x).abs().amax(1) > CHANGED).float()
    region = F.max_pool2d(changed.mean(0, keepdim=True)[None], 3, 1, 1)[0, 0]  # where edits draw, softly
    if len(real) < 2 or float(region.sum()) == 0:
        return torch.full((len(x),), math.nan, device=x.device), torch.ones(len(x), dtype=torch.bool, device=x.device)
    real_strength = (_edges(real) * region).flatten(1).sum(1)
    mean = real_strength.mean().clamp_min(1e-6)
    ratio = (_edges(edited) * region).flatten(1).sum(1) / mean
    before = (_edges(x) * region).flatten(1).sum(1).mean()  # the faces as they were, with the other value
    if before <= mean:  # the target brings detail: it must be drawn sharply
        return ratio, ratio >= torch.quantile(real_strength / mean, REAL_TAIL)
    return ratio, ratio <= torch.quantile(real_strength / mean, 1 - REAL_TAIL)  # detail taken away: no leftovers


def margin(share: float, n: int) -> float:
    """Half the width of the 95% interval of a share measured on n > 0 faces (normal approximation,
    with a floor of one face's worth, so a perfect score on few faces is not called exact)."""
    return 1.96 * math.sqrt(max(share * (1 - share), 1 / n) / n)


def warnings(result: dict) -> list[str]:
    """Why a run's swap figures cannot be taken at face value, one line per attribute or direction."""
    lines = []
    for name, by in result.get("sharpness", {}).items():
        low, high = SHARPNESS_RANGE
        for direction, ratio in by.items():
            if ratio is None:
                continue
            if ratio < low:
                lines.append(
                    f"{name} {direction}: edits look BLURRED: where they change the face, their edges are {ratio:.0%} as "
                    f"strong as real faces' with that value (below {low:.0%}); edits less sharp than real faces are not "
                    "counted as successes; the model needs more training, or a sharper decoder"
                )
            elif ratio > high:
                lines.append(
                    f"{name} {direction}: edits leave LEFTOVERS or artefacts: where they change the face, their edges are "
                    f"{ratio:.0%} as strong as real faces' with that value (above {high:.0%})"
                )
    for name, accuracy in result["classifier_accuracy"].items():
        if accuracy < RELIABLE_ACCURACY:
            lines.append(
                f"{name}: swap accuracy NOT RELIABLE: the evaluation classifier is right on only {accuracy:.1%} of the "
                f"clean validation faces (below {RELIABLE_ACCURACY:.0%}), so it cannot be trusted to see whether an "
                f"edit shows {name} (faint leftovers pass); more images, or more --clf-steps, make it stronger"
            )
        for direction, faces in result["swap_faces"][name].items():
            if 0 < faces < FEW_FACES:  # none at all: the summary says it was not measured
                lines.append(
                    f"{name} {direction}: only {faces} validation faces (±{margin(result['swap_accuracy'][name][direction], faces):.0%}); "
                    "a larger --val-fraction measures it better"
                )
    return lines


def percent(share: float | None) -> str:
    """A share as the summary and the card show it; "?" where a report lacks it."""
    return "?" if share is None else f"{share:.1%}"


def sharpness_text(ratio: float | None, have: int) -> str:
    """A direction's median sharpness, or why it has none (`have`: the validation faces that have the
    value it edits to, which its edits are measured against)."""
    if ratio is not None:
        return f"{ratio:.2f}"
    return "none: no validation face has that value" if have == 0 else "not measured"


def summary_lines(result: dict) -> list[str]:
    """The scores as `fader train` and `fader eval` print them: how they were measured, per
    attribute and direction with 95% margins, the classifier's own accuracy, then the warnings."""
    n, psnr = result["n_faces"], result["psnr"]
    lines = [
        f"reconstruction PSNR: {'not measured' if psnr is None else f'{psnr:.2f} dB'} (decoded at the true labels,"
        f" {n} validation faces)",
        "swap accuracy: share of validation faces that the run's evaluation classifier sees with the attribute "
        f"changed after `fader edit` changes it, counting only edits whose detail is that of {1 - REAL_TAIL:.0%} of "
        "the real faces with that value (as sharp where the value draws something, no leftovers where it takes "
        "something away; ± is the 95% margin; the classifier alone, the bare decode, and the edits' median "
        "sharpness against real faces in brackets):",
    ]
    for name, by in result["swap_accuracy"].items():
        parts = []
        for direction, share in by.items():
            faces = result["swap_faces"][name][direction]
            if not faces:
                parts.append(f"{direction} not measured (no validation face to edit: every one has that value)")
                continue
            decoded = result["swap_accuracy_decoded"][name][direction]
            alone = result.get("swap_accuracy_classifier", {}).get(name, {}).get(direction)
            sharp = result.get("sharpness", {}).get(name, {}).get(direction)
            parts.append(
                f"{direction} {share:.1%} ±{margin(share, faces):.1%} [classifier {percent(alone)}, decode "
                f"{decoded:.1%}, sharpness {sharpness_text(sharp, n - faces)}] of {faces}"
            )
        accuracy = result["classifier_accuracy"][name]
        flag = "" if accuracy >= RELIABLE_ACCURACY else "  NOT RELIABLE"
        lines.append(f"  {name}: " + "; ".join(parts) + f"; classifier {accuracy:.1%} right on clean faces{flag}")
    lines += [f"warning: {line}" for line in result.get("warnings", [])]
    return lines

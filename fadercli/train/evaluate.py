"""Judging a Fader model the paper's way: an attribute classifier trained separately on the same
training split decides whether edited faces show the requested attribute (swap accuracy), beside
reconstruction quality (PSNR); an edit counts only where it shows the value as clearly and as
sharply as real faces with it, and a direction whose edits are tellable from real faces by how
faintly they show it is flagged (traces left by a removal, faint additions).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from fadercli.attributes import AttributeSet
from fadercli.net.model import AutoEncoder, Classifier
from fadercli.net.tensors import from_uint8
from fadercli.train.classifiers import predict, strength


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
# Clarity: an edit counts only where the classifier (trained on faded faces, so it tells how much
# of a value an image shows) sees the target at least at CLEAR, as real faces show it; a removal
# that leaves a 30% trace of glasses is seen at 70% "without", an addition drawn faintly likewise.
CLEAR = 0.8
# A direction is flagged when a real face with the value shows it more clearly than an edit does
# this often (0.5: edits as clear as real faces; the exact counterfactual measures 0.45 to 0.56 in
# the tests, a 30% ghost of what was removed 0.88 to 0.91).
TELLABLE = 0.75
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
        share whose edit (as `fader edit` sets the attribute to the target: estimated values,
        composed edit) looks like the real thing: the classifier sees the target value as clearly
        as in real faces with that value (clarity), and the edit is as sharp as they are
        (edge_ratio); None where no face has another value (every figure that has nothing to
        measure is None, null in JSON);
    swap_accuracy_classifier: the share the classifier alone calls the target value (argmax);
    swap_accuracy_decoded: the same for the bare decode from the true labels (the paper's measure);
    clarity: {attribute: {direction: median strength}}: how much of the target value the classifier
        sees in the edits, 0 to 1 (a removal that leaves a trace of glasses scores the share of
        glasses left out of it), beside clarity_needed, what an edit needs: CLEAR, or less where the
        classifier sees the value less clearly in REAL_TAIL of the real faces that have it;
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
    real: dict[str, dict[int, list[torch.Tensor]]] = {n: {c: [] for _, c in keys[n]} for n in names}
    found: dict[str, dict[str, list[dict]]] = {n: {d: [] for d, _ in keys[n]} for n in names}
    clf_correct = np.zeros(len(attributes))
    psnrs, n = [], 0
    for images, labels in batches:
        n += len(images)
        x = from_uint8(images, device)
        y = torch.from_numpy(labels).to(device)
        features, estimate, recon = editor.analyse(x)  # the model in eval mode, as `fader edit` runs it
        psnrs.append(psnr(editor.decode(features, y.float()), x).cpu())
        logits = clf(x)
        clf_correct += (predict(attributes, logits) == y).sum(0).cpu().numpy()
        for i, a in enumerate(attributes):
            for direction, category in keys[a.name]:
                real[a.name][category].append(strength(attributes, logits, i, category)[y[:, i] == category].cpu())
                edits = _judge_direction(editor, clf, attributes, x, y, (features, estimate, recon), i, category)
                if edits is not None:
                    found[a.name][direction].append(edits)

    def joined(name: str, direction: str, key: str) -> torch.Tensor:
        parts = [e[key] for e in found[name][direction]]
        return torch.cat(parts) if parts else torch.zeros(0)

    def median(values: torch.Tensor) -> float | None:
        values = values[values.isfinite()]
        return round(float(values.median()), 3) if len(values) else None

    result: dict = {key: {} for key in ("swap_accuracy", "swap_accuracy_classifier", "swap_accuracy_decoded")}
    result |= {key: {} for key in ("clarity", "clarity_needed", "tellable", "sharpness", "swap_faces")}
    for a in attributes:
        for key in result:
            result[key][a.name] = {}
        for direction, category in keys[a.name]:
            shown = torch.cat(real[a.name][category])  # how clearly real faces with the value show it
            needed = clarity_needed(shown)
            seen, clear = joined(a.name, direction, "seen"), joined(a.name, direction, "strength")
            sharp, ratio = joined(a.name, direction, "sharp"), joined(a.name, direction, "ratio")
            faces = len(seen)

            def share(mask: torch.Tensor, faces: int = faces) -> float | None:
                return round(float(mask.float().mean()), 4) if faces else None

            result["swap_accuracy"][a.name][direction] = share((clear >= needed) & sharp.bool())
            result["swap_accuracy_classifier"][a.name][direction] = share(seen)
            result["swap_accuracy_decoded"][a.name][direction] = share(joined(a.name, direction, "decoded"))
            result["clarity"][a.name][direction] = median(clear)
            result["tellable"][a.name][direction] = tellable(shown, clear)
            result["clarity_needed"][a.name][direction] = round(needed, 3)
            result["sharpness"][a.name][direction] = median(ratio)
            result["swap_faces"][a.name][direction] = faces
    all_psnr = torch.cat(psnrs) if psnrs else torch.zeros(0)
    result |= {
        "classifier_accuracy": dict(zip(names, (clf_correct / max(n, 1)).round(4).tolist())),
        "psnr": round(float(all_psnr.mean()), 3) if n else None,
        "n_faces": n,
    }
    result["warnings"] = warnings(result)
    return result


def tellable(real: torch.Tensor, edits: torch.Tensor) -> float | None:
    """How often a real face with the value shows it more clearly than an edit to it (ties half):
    0.5 where edits show it as real faces do; the area under the curve of telling them apart by clarity."""
    if len(real) == 0 or len(edits) == 0:
        return None
    # Sorted counts, not a real x edits table: a large validation split stays cheap.
    edits = edits.float().sort().values
    below = torch.searchsorted(edits, real.float(), right=False).float()
    tied = torch.searchsorted(edits, real.float(), right=True).float() - below
    return round(float((below + 0.5 * tied).mean() / len(edits)), 3)


def clarity_needed(real: torch.Tensor) -> float:
    """How clearly an edit must show a value to count: CLEAR, or as clearly as all but REAL_TAIL of the
    real faces with that value show it where the classifier sees those less clearly."""
    if len(real) == 0:
        return CLEAR
    return min(CLEAR, float(torch.quantile(real.float(), REAL_TAIL)))


def _judge_direction(
    editor,
    clf: Classifier,
    attributes: AttributeSet,
    x: torch.Tensor,
    y: torch.Tensor,
    analysis: tuple,
    i: int,
    category: int,
) -> dict[str, torch.Tensor] | None:
    """The faces of a batch that do not have `category` of attribute i, set to it, per face: the
    target's strength in the edit, whether the classifier calls it the target (argmax) in the edit
    and in the bare decode, the edit's sharpness ratio and whether it is as sharp as real faces;
    None if every face has it already."""
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
    logits = clf(edited)
    ratio, sharp = edge_ratio(x[rows], edited, x[y[:, i] == category])
    return {
        "strength": strength(attributes, logits, i, category).cpu(),
        "seen": (predict(attributes, logits)[:, i] == category).cpu(),
        "decoded": (predict(attributes, clf(decoded))[:, i] == category).cpu(),
        "ratio": ratio.cpu(),
        "sharp": sharp.cpu(),
    }


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
    for name, by in result.get("tellable", {}).items():
        for direction, tell in by.items():
            if tell is None or tell < TELLABLE:
                continue
            what = f"leave TRACES of {name}" if direction == "removing" else "look FAINT"
            lines.append(
                f"{name} {direction}: edits {what}: {tell:.0%} of the time a real face with that value shows it more "
                f"clearly than an edit does (half the time where edits look real; median clarity of the edits "
                f"{result['clarity'][name][direction]:.0%}); edits less clear than {result['clarity_needed'][name][direction]:.0%} "
                "are not counted as successes"
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
        "swap accuracy: share of validation faces whose edit (as `fader edit` makes it) looks like a real face "
        "with the value: the run's evaluation classifier, trained to tell how much of a value a face shows, sees "
        f"the value as clearly as in real faces that have it (at least {CLEAR:.0%}), and the edit's detail is that "
        f"of {1 - REAL_TAIL:.0%} of those faces (as sharp where the value draws something, no leftovers where it "
        "takes something away); ± is the 95% margin; in brackets the classifier's verdict alone (argmax), the "
        "bare decode's, the edits' median clarity and their median sharpness against real faces:",
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
            clear = result.get("clarity", {}).get(name, {}).get(direction)
            sharp = result.get("sharpness", {}).get(name, {}).get(direction)
            parts.append(
                f"{direction} {share:.1%} ±{margin(share, faces):.1%} [classifier {percent(alone)}, decode "
                f"{decoded:.1%}, clarity {percent(clear)}, sharpness {sharpness_text(sharp, n - faces)}] of {faces}"
            )
        accuracy = result["classifier_accuracy"][name]
        flag = "" if accuracy >= RELIABLE_ACCURACY else "  NOT RELIABLE"
        lines.append(f"  {name}: " + "; ".join(parts) + f"; classifier {accuracy:.1%} right on clean faces{flag}")
    lines += [f"warning: {line}" for line in result.get("warnings", [])]
    return lines

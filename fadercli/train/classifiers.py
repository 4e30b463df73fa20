"""The classifiers beside a Fader model: the evaluation classifier that judges its edits and the
guide behind its classifier loss, how they are built and trained (on clean and on faded faces),
and the per-attribute losses and predictions over their logits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from fadercli.attributes import AttributeSet
from fadercli.devices import Precision
from fadercli.net.model import Classifier, ClassifierConfig


def one_hot(attributes: AttributeSet, labels: torch.Tensor) -> torch.Tensor:
    """(B, n_attributes) category indices -> (B, n_channels) decoder/classifier targets."""
    parts = [F.one_hot(labels[:, i], a.n_categories) for i, a in enumerate(attributes)]
    return torch.cat(parts, 1).float()


def attribute_loss(attributes: AttributeSet, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per attribute over its own categories, averaged over attributes. `labels` are
    (B, n_attributes) category indices, or (B, n_channels) shares of each category (faded images)."""
    losses = []
    for i, (a, start) in enumerate(zip(attributes, attributes.offsets())):
        target = labels[:, start : start + a.n_categories] if labels.is_floating_point() else labels[:, i]
        losses.append(F.cross_entropy(logits[:, start : start + a.n_categories], target))
    return torch.stack(losses).mean()


def strength(attributes: AttributeSet, logits: torch.Tensor, i: int, category: int) -> torch.Tensor:
    """(B,) how much of `category` of attribute i a classifier sees in each image, 0 to 1."""
    start = attributes.offsets()[i]
    return logits[:, start : start + attributes.attributes[i].n_categories].float().softmax(1)[:, category]


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
# Classifiers learn how much of each attribute an image shows, not only whether: FADE_SHARE of
# every batch is blended with other faces of the batch at up to FADE_MOST opacity (see `faded`).
# Trained on clean faces alone, a classifier calls faint frames "no glasses", so neither the guide
# nor the report could see what a removal leaves behind (docs/experiments.md, issue 27).
FADE_SHARE = 0.5
FADE_MOST = 0.5
FADE_PRESENT = 0.15  # "presence": a fainter attribute than this does not count
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


def faded(
    attributes: AttributeSet, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A share of the images blended with others of the batch, and their targets (shares of each
    category) two ways: "strength", the same blend of the two one-hot label vectors (how much of a
    value shows); "presence", a binary attribute present when either face has it, the fainter one at
    FADE_PRESENT or more (any trace counts). Faces are aligned: a blended attribute sits where it would."""
    n = len(x)
    partner = torch.randperm(n, generator=generator).to(x.device)
    alpha = torch.rand(n, generator=generator) * FADE_MOST
    alpha = torch.where(torch.rand(n, generator=generator) < FADE_SHARE, alpha, torch.zeros(n)).to(x.device)
    labels = one_hot(attributes, y)
    mixed = x + alpha.view(-1, 1, 1, 1) * (x[partner] - x)
    strength = labels + alpha[:, None] * (labels[partner] - labels)
    presence = strength.clone()  # categorical attributes: blended as in strength
    for i, (a, start) in enumerate(zip(attributes, attributes.offsets())):
        if a.binary:
            shown = (y[:, i] == 1) | ((y[partner][:, i] == 1) & (alpha >= FADE_PRESENT))
            presence[:, start : start + 2] = torch.stack([~shown, shown], 1).float()
    return mixed, {"strength": strength, "presence": presence}


def train_classifiers(
    attributes: AttributeSet,
    configs: list[tuple[ClassifierConfig, float, str | None]],
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
    """Fit classifiers, given as (config, input noise std, targets on faded faces: "presence" or
    "strength" as `faded` makes them, or None for clean faces only), on the same `batches(step) ->
    (images in [-1, 1], labels)`, each image moved by up to `shift` pixels; returns them frozen, in
    eval mode, and the steps they took: `steps`, or fewer where `seconds` would not hold them (the pace of the
    first PROBE_STEPS decides, so that a run's classifiers cost a fixed share of its budget), their
    forward passes in `precision` (float32 unless given), their losses in float32."""
    generator = torch.Generator().manual_seed(seed)
    warm = max(1, min(steps // 10, WARM_STEPS))
    total = steps

    def schedule(s: int) -> float:  # warm-up, then cosine to 0 over however many steps there are
        return min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / max(total, 1)))

    models, optimisers = [], []
    for config, *_ in configs:
        clf = Classifier(config).to(device).train()
        opt = torch.optim.Adam(clf.parameters(), lr=lr, betas=(0.9, 0.999))
        models.append(clf)
        optimisers.append((opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)))
    cast = precision.autocast if precision is not None else nullcontext
    started, step = time.monotonic(), 0
    while step < total:
        x, y = batches(step)
        x = _shifted(x, shift, generator)
        mixed, targets = faded(attributes, x, y, generator)
        for clf, (opt, sched), (_, noise, fade) in zip(models, optimisers, configs):
            seen, target = (x, y) if fade is None else (mixed, targets[fade])
            with cast():
                logits = clf(seen + noise * torch.randn_like(seen) if noise else seen)
            loss = attribute_loss(attributes, logits.float(), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        step += 1
        if seconds is not None and step == min(PROBE_STEPS, total):
            per_step = (time.monotonic() - started) / step
            total = max(step, min(steps, int(seconds / per_step)))
    return [clf.eval().requires_grad_(False) for clf in models], total

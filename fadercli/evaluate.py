"""Judging a Fader model the paper's way: an attribute classifier trained separately on the same
training split decides whether edited faces show the requested attribute (swap accuracy), beside
reconstruction quality (PSNR).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from fadercli.attributes import AttributeSet
from fadercli.model import AutoEncoder, Classifier, ClassifierConfig


def to_tensor(images: np.ndarray, device: torch.device, flips: np.ndarray | None = None) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1], mirrored where `flips` says."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device, non_blocking=True)
    x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    if flips is not None and flips.any():
        mask = torch.from_numpy(flips).to(device)
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


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
    """The evaluation classifier: small and quick; it only has to tell attributes apart."""
    return ClassifierConfig(attributes.pairs(), img_size=img_size, init_fm=16, max_fm=128, hid_dim=128, dropout=0.1)


def guide_config(attributes: AttributeSet, img_size: int) -> ClassifierConfig:
    """The classifier behind the training loss: another architecture than the judge's, so that
    what the decoder learns to please is not what scores it; more dropout, for smoother gradients."""
    return ClassifierConfig(attributes.pairs(), img_size=img_size, init_fm=16, max_fm=256, hid_dim=256, dropout=0.3)


def train_classifiers(
    attributes: AttributeSet,
    configs: list[tuple[ClassifierConfig, float]],
    batches: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    *,
    steps: int,
    device: torch.device,
    lr: float = 1e-3,
) -> list[Classifier]:
    """Fit classifiers, given as (config, input noise std), on the same `batches(step) -> (images in
    [-1, 1], labels)`; returns them frozen, in eval mode."""
    warm = max(1, steps // 10)

    def schedule(s: int) -> float:  # warm-up, then cosine to 0
        return min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(steps, 1)))

    models, optimisers = [], []
    for config, _ in configs:
        clf = Classifier(config).to(device).train()
        opt = torch.optim.Adam(clf.parameters(), lr=lr, betas=(0.9, 0.999))
        models.append(clf)
        optimisers.append((opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)))
    for step in range(steps):
        x, y = batches(step)
        for clf, (opt, sched), (_, noise) in zip(models, optimisers, configs):
            loss = attribute_loss(attributes, clf(x + noise * torch.randn_like(x) if noise else x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return [clf.eval().requires_grad_(False) for clf in models]


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [-1, 1] (peak-to-peak 2)."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(4.0 / mse)


@torch.no_grad()
def evaluate(
    ae: AutoEncoder,
    clf: Classifier,
    attributes: AttributeSet,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    device: torch.device,
) -> dict:
    """Scores over `batches` of (uint8 images, category labels):

    swap_accuracy: per attribute, the share of faces that the classifier judges to show the other
        value after `fader edit` sets that attribute to it (the opposite value of a binary one;
        the next category of a categorical one), everything else as `fader edit` does it
        (estimated values, composed edit);
    swap_accuracy_decoded: the same for the bare decode from the true labels (the paper's measure);
    psnr: reconstruction PSNR of the decode from the true labels (dB);
    classifier_accuracy: the judge's own accuracy on the unedited faces.
    """
    from fadercli.editor import Editor, compose

    editor = Editor(ae, device)
    n = 0
    swaps = np.zeros(len(attributes))
    swaps_decoded = np.zeros(len(attributes))
    clf_correct = np.zeros(len(attributes))
    psnrs = []
    for images, labels in batches:
        n += len(images)
        x = to_tensor(images, device)
        y = torch.from_numpy(labels).to(device)
        features, estimate, recon = editor.analyse(x)
        true_recon = ae.decode(features, one_hot(attributes, y))
        psnrs.append(psnr(true_recon, x).cpu())
        clf_correct += (predict(attributes, clf(x)) == y).sum(0).cpu().numpy()
        for i, a in enumerate(attributes):
            target = y.clone()
            target[:, i] = (y[:, i] + 1) % a.n_categories
            decoded = ae.decode(features, one_hot(attributes, target))
            values = estimate.clone()
            values[:, i] = target[:, i].float()
            edited = compose(x, recon, editor.decode(features, values))
            swaps_decoded[i] += (predict(attributes, clf(decoded))[:, i] == target[:, i]).sum().item()
            swaps[i] += (predict(attributes, clf(edited))[:, i] == target[:, i]).sum().item()
    names = attributes.names
    all_psnr = torch.cat(psnrs) if psnrs else torch.zeros(0)
    return {
        "swap_accuracy": dict(zip(names, (swaps / max(n, 1)).round(4).tolist())),
        "swap_accuracy_decoded": dict(zip(names, (swaps_decoded / max(n, 1)).round(4).tolist())),
        "psnr": round(float(all_psnr.mean()), 3) if n else math.nan,
        "classifier_accuracy": dict(zip(names, (clf_correct / max(n, 1)).round(4).tolist())),
        "n_faces": n,
    }

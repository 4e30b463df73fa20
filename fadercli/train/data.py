"""Training data: a labelled source (sources.py) joined to its decoded images (images.py), the
train / validation split and the batches. Labels are read fresh each run and joined to the cache,
so editing labels.csv costs no re-decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fadercli.attributes import AttributeSet
from fadercli.errors import InputError, UsageError
from fadercli.train.images import ImageCache, Preprocess, build_cache
from fadercli.train.sources import Source, find_source

EVAL_FACES = 500  # swap accuracy near 90% to about 1.5 points (one standard error)


@dataclass
class Dataset:
    """Cached images with labels, split into train and validation index arrays."""

    description: str
    cache: ImageCache
    attributes: AttributeSet
    labels: np.ndarray  # (n_cache_rows, n_attributes)
    train: np.ndarray  # cache row indices
    val: np.ndarray

    def scored(self) -> np.ndarray:
        """The validation faces a run is scored on: at most EVAL_FACES, so scoring time is bounded."""
        return self.val[:EVAL_FACES]

    def summary(self) -> dict:
        """Its size and, per attribute, the share of images with it in train and validation (run.json,
        the model card)."""
        with_ = {}
        for i, name in enumerate(self.attributes.names):
            shares = {"train": self.labels[self.train, i].mean()}
            if len(self.val):
                shares["validation"] = self.labels[self.val, i].mean()
            with_[name] = {k: round(float(v), 4) for k, v in shares.items()}
        return {"train": len(self.train), "validation": len(self.val), "with": with_}

    def balance(self) -> list[str]:
        """One line per attribute: the share of positives in train and validation."""
        return [
            f"{name}: {shares['train']:.0%} with in train, {shares.get('validation', float('nan')):.0%} in validation"
            for name, shares in self.summary()["with"].items()
        ]


def split(n_rows: int, rows: np.ndarray, seed: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """A seeded train/validation split of `rows` (at least one of each when possible)."""
    rng = np.random.default_rng(seed)
    order = rows[rng.permutation(len(rows))]
    n_val = min(max(1, round(len(rows) * val_fraction)), len(rows) - 1) if len(rows) > 1 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def make_dataset(source: Source, cache: ImageCache, *, seed: int, val_fraction: float) -> Dataset:
    """Join labels to the decoded images; refuse attributes that never change."""
    rows = np.flatnonzero(cache.valid)
    for path, problem in zip(cache.files, cache.problems):
        if problem is not None:
            source.skips.add(problem, Path(path).name)
    if len(rows) < 2:
        problems = f" ({'; '.join(source.skips.lines())})" if source.skips.counts else ""
        raise InputError(f"{source.description}: fewer than 2 usable images{problems}")
    for i, name in enumerate(source.attributes.names):
        values = np.unique(source.labels[rows, i])
        if len(values) < 2:
            raise InputError(
                f"{source.description}: attribute {name} is {values[0]} for every image; "
                "a model cannot learn to change an attribute it never sees change"
            )
    train, val = split(len(cache.files), rows, seed, val_fraction)
    return Dataset(source.description, cache, source.attributes, source.labels, train, val)


class BatchPlan:
    """Which rows make up every batch: a seeded permutation per epoch, with flips.

    A pure function of (seed, step), so a resumed run sees exactly the batches it would have seen,
    and each DDP rank takes its own slice of the same global batch.
    """

    def __init__(self, rows: np.ndarray, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        if len(rows) < batch_size:
            raise InputError(f"{len(rows)} training images are fewer than one batch of {batch_size}")
        self.rows, self.batch_size, self.seed, self.rank, self.world = rows, batch_size, seed, rank, world
        self.per_epoch = len(rows) // batch_size
        self._epoch, self._order, self._flips = -1, None, None

    def set_epoch(self, epoch: int) -> None:
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._order = rng.permutation(len(self.rows))
            self._flips = rng.random(len(self.rows)) < 0.5
            self._epoch = epoch

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(cache rows, flip flags) of this rank's share of global batch `step`, rows sorted for locality."""
        self.set_epoch(step // self.per_epoch)
        start = (step % self.per_epoch) * self.batch_size
        picked = np.arange(start + self.rank, start + self.batch_size, self.world)
        rows, flips = self.rows[self._order[picked]], self._flips[picked]
        order = np.argsort(rows, kind="stable")
        return rows[order], flips[order]


def prepare(
    data: Path | None,
    *,
    img_size: int,
    cache_root: Path,
    labels: Path | None = None,
    images: Path | None = None,
    crop: str = "none",
    align: bool = False,
    attributes: list[str] | None = None,
    seed: int = 0,
    val_fraction: float = 0.05,
    workers: int = 1,
    log: Callable[[str], None] = lambda message: None,
) -> Dataset:
    """Source -> cache -> split, saying on `log` what was skipped and how the split is balanced."""
    source = find_source(data, labels=labels, images=images, attributes=attributes)
    started = len(source.files)
    try:
        preprocess = Preprocess(img_size, crop, align)
    except ValueError as e:
        raise UsageError(str(e)) from None
    cache = build_cache(source.files, preprocess, cache_root, workers=workers)
    dataset = make_dataset(source, cache, seed=seed, val_fraction=val_fraction)
    for line in source.skips.lines():
        log(line)
    log(
        f"{source.description}: {len(dataset.train) + len(dataset.val)} of {started} images usable; "
        f"{len(dataset.train)} train, {len(dataset.val)} validation"
    )
    for line in dataset.balance():
        log("  " + line)
    return dataset

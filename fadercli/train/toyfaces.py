"""Procedural cartoon faces with known attributes and exact counterfactuals, in many styles.

Every face is a set of random parameters plus four binary attributes. The parameters cover the
drawing (line weight 1-3 px, face and feature shapes, hair, eyes, noses, mouths, ink outlines),
the scene (plain, gradient, striped, checked, radial or mottled backgrounds; lighting) and the
camera (pose, scale, blur, noise, JPEG artefacts). Each attribute's look follows from traits
the face shows whether or not it has the attribute (frame shape from the face's shape, frame
width from the line weight, frame colour from the hair, hat kind from the hair, hat colour from
the background, smile kind from the mouth), so across faces every variant appears (round,
rectangular, rimless, tinted and dark lenses; caps, brimmed hats, beanies, top hats; open,
toothy and laughing smiles; full beards, goatees, stubble), yet a flipped face's counterfactual
is fully determined by what the face shows.

Rendering is a pure function of the parameters (the camera noise comes from a seed of each
face's own), so the same face drawn again with one attribute flipped is its exact
counterfactual: the ground truth that tests, benchmarks and the offline demo compare edits with.

`STYLES` are sampling configurations: "mixed" (every knob over its whole range; the default),
"clean" (drawings without camera effects), "plain" (one drawing convention, clean: what a short
run learns quickly), "thin" (hairline strokes, low contrast, a soft camera), and "heldout", which
no tuning ever looks at: it keeps one check of the training recipe on a style it was not chosen
on (docs/experiments.md). Vectorised over a batch with
numpy: a few milliseconds a face at 64 px.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fadercli.train.toydraw import render

__all__ = ["ATTRIBUTES", "SPECS", "STYLES", "flipped", "labels", "render", "sample", "write_dataset"]

ATTRIBUTES = ("Eyeglasses", "Smiling", "Hat", "Beard")

_PALETTES = {
    "skin": np.array(
        [
            [255, 224, 196],
            [241, 194, 150],
            [224, 172, 125],
            [198, 134, 92],
            [141, 85, 56],
            [95, 60, 40],
            [250, 210, 190],
            [180, 120, 80],
            [170, 210, 160],
            [180, 190, 240],
        ],
        float,
    ),
    "pale": np.array([[250, 235, 220], [235, 215, 200], [225, 225, 235], [240, 225, 190]], float),
    "hair": np.array(
        [
            [30, 25, 22],
            [90, 56, 32],
            [160, 110, 60],
            [225, 190, 110],
            [200, 90, 40],
            [140, 140, 140],
            [235, 235, 225],
            [60, 40, 90],
        ],
        float,
    ),
}
# Indexed by the mouth kind: (neutral mouth, smile) = (line, open with teeth), (closed lips,
# wide grin), (slight frown, open laugh).

# How sample() draws each parameter:
#   ("uniform", lo, hi)  ("normal", mean, sd)  ("choice", w0, w1, ...): a category index, weights w
#   ("zero_or", p, lo, hi): 0 with probability p, else uniform  ("colour", lo, hi): RGB, channels uniform
#   ("palette", name): a colour of that palette, jittered
SPECS: dict[str, tuple] = {
    "angle": ("normal", 0.0, 0.12),  # radians
    "scale": ("uniform", 0.86, 1.12),
    "dx": ("normal", 0.0, 0.035),
    "dy": ("normal", 0.0, 0.035),
    "turn": ("uniform", -0.1, 0.1),  # features shifted sideways, as in a slightly turned head
    "skin": ("palette", "skin"),
    "face_w": ("uniform", 0.45, 0.57),
    "face_h": ("uniform", 0.57, 0.69),
    "jaw": ("uniform", 2.0, 3.2),  # superellipse exponent of the face: round to square
    "blush": ("zero_or", 0.6, 0.15, 0.45),
    "hair": ("palette", "hair"),
    "hair_kind": ("choice", 0.4, 0.3, 0.18, 0.12),
    "hairline": ("uniform", 0.30, 0.44),
    "parting": ("normal", 0.0, 0.12),
    "eye_gap": ("uniform", 0.18, 0.245),
    "eye_y": ("uniform", -0.05, 0.02),
    "eye_size": ("uniform", 0.8, 1.2),
    "eye_kind": ("choice", 0.6, 0.25, 0.15),  # white + iris + pupil, a dot, a big iris
    "iris": ("choice", 1, 1, 1, 1, 1, 1),
    "brow": ("uniform", 0.018, 0.045),
    "brow_tilt": ("normal", 0.0, 0.12),
    "nose_kind": ("choice", 0.5, 0.3, 0.2),  # shaded, a stroke, nostrils
    "mouth_y": ("uniform", 0.31, 0.37),
    "mouth_w": ("uniform", 0.1, 0.15),
    "mouth_kind": ("choice", 0.4, 0.3, 0.3),
    "line_px": ("uniform", 1.0, 3.0),  # line weight in pixels at 64 px: mouth lines, outlines, frames
    "outline": ("zero_or", 0.65, 0.5, 1.0),  # ink outlines' darkness
    "bg_kind": ("choice", 0.3, 0.15, 0.15, 0.15, 0.1, 0.15),  # gradient, plain, stripes, checks, radial, mottled
    "bg_a": ("colour", 40, 240),
    "bg_b": ("colour", 40, 240),
    "bg_freq": ("uniform", 3.0, 9.0),
    "bg_theta": ("uniform", 0.0, math.pi),
    "bg_phase": ("uniform", 0.0, 2 * math.pi),
    "light": ("zero_or", 0.4, 0.08, 0.35),  # strength of a light from one side (also tints lenses)
    "light_dir": ("uniform", 0.0, 2 * math.pi),
    "gain": ("uniform", 0.82, 1.12),
    "contrast": ("uniform", 0.7, 1.1),
    "blur": ("zero_or", 0.55, 0.3, 1.0),  # Gaussian sigma, pixels at 64 px (in proportion at other sizes)
    "noise": ("zero_or", 0.5, 1.0, 7.0),  # grey levels
    "jpeg": ("zero_or", 0.55, 30, 92),  # quality; 0: none
}

_CLEAN = {
    "blur": ("zero_or", 1, 0, 0),
    "noise": ("zero_or", 1, 0, 0),
    "jpeg": ("zero_or", 1, 0, 0),
    "light": ("zero_or", 1, 0, 0),
    "gain": ("uniform", 1, 1),
    "contrast": ("uniform", 1, 1),
}
STYLES: dict[str, dict[str, tuple]] = {
    "mixed": {},
    "clean": {**_CLEAN, "bg_kind": ("choice", 0.6, 0.4)},
    # One drawing convention throughout, as a first look at the method: short runs learn it quickly.
    "plain": {
        **_CLEAN,
        "bg_kind": ("choice", 1),
        "line_px": ("uniform", 2, 2),
        "outline": ("zero_or", 1, 0, 0),
        "hair_kind": ("choice", 1, 1),
        "mouth_kind": ("choice", 1),
        "eye_kind": ("choice", 1),
        "nose_kind": ("choice", 1),
        "jaw": ("uniform", 2.0, 2.4),
        "blush": ("zero_or", 1, 0, 0),
        "angle": ("normal", 0.0, 0.08),
        "mouth_y": ("uniform", 0.33, 0.34),
        "mouth_w": ("uniform", 0.13, 0.14),
        "turn": ("uniform", 0, 0),
        "eye_y": ("uniform", -0.02, -0.02),
        "eye_size": ("uniform", 1, 1),
        "hairline": ("uniform", 0.38, 0.38),
        "parting": ("normal", 0, 0),
        "brow_tilt": ("normal", 0, 0),
        "scale": ("uniform", 0.93, 1.07),
    },
    "thin": {
        "line_px": ("uniform", 1.0, 1.5),
        "contrast": ("uniform", 0.55, 0.8),
        "blur": ("uniform", 0.4, 0.8),
        "noise": ("uniform", 2, 6),
        "outline": ("zero_or", 1, 0, 0),
    },
    # Held out: never used to choose anything. Flat ink drawings with hairline strokes, squarer
    # faces (so squarer frames) and wider heads than the other styles draw, lips and grins only,
    # caps and beanies, striped backgrounds, pale skins, light JPEG.
    "heldout": {
        **_CLEAN,
        "line_px": ("uniform", 0.8, 1.1),
        "jaw": ("uniform", 3.3, 3.8),
        "face_w": ("uniform", 0.56, 0.62),
        "outline": ("uniform", 0.9, 1.0),
        "mouth_kind": ("choice", 0, 1, 0),
        "hair_kind": ("choice", 1, 0, 1, 0),
        "eye_kind": ("choice", 0, 1, 0),
        "bg_kind": ("choice", 0, 0, 1),
        "skin": ("palette", "pale"),
        "jpeg": ("uniform", 70, 90),
    },
}


def sample(n: int, seed: int = 0, p: float | Sequence[float] = 0.5, style: str = "mixed") -> dict[str, np.ndarray]:
    """Random parameters for `n` faces of a style; attribute i is present with probability p[i]."""
    if style not in STYLES:
        raise ValueError(f"unknown toy face style {style!r}; styles: {', '.join(STYLES)}")
    rng = np.random.default_rng(seed)
    probs = np.broadcast_to(np.asarray(p, dtype=float), (len(ATTRIBUTES),))
    params = {name: _draw(rng, n, spec) for name, spec in {**SPECS, **STYLES[style]}.items()}
    params["grain_seed"] = rng.integers(0, 2**31, size=n)
    for name, prob in zip(ATTRIBUTES, probs):
        params[name] = rng.random(n) < prob
    return params


def _draw(rng: np.random.Generator, n: int, spec: tuple) -> np.ndarray:
    kind, *args = spec
    if kind == "uniform":
        return rng.uniform(args[0], args[1], n)
    if kind == "normal":
        return rng.normal(args[0], args[1], n)
    if kind == "choice":
        weights = np.asarray(args, dtype=float)
        return rng.choice(len(weights), size=n, p=weights / weights.sum())
    if kind == "zero_or":
        return np.where(rng.random(n) < args[0], 0.0, rng.uniform(args[1], args[2], n))
    if kind == "colour":
        return rng.uniform(args[0], args[1], (n, 3))
    if kind == "palette":
        palette = _PALETTES[args[0]]
        return np.clip(palette[rng.integers(len(palette), size=n)] + rng.normal(0, 10, (n, 3)), 0, 255)
    raise ValueError(f"unknown parameter spec {spec!r}")


def flipped(params: dict[str, np.ndarray], attribute: str) -> dict[str, np.ndarray]:
    """The same faces with one attribute toggled: the counterfactual."""
    out = dict(params)
    out[attribute] = ~params[attribute]
    return out


def labels(params: dict[str, np.ndarray]) -> np.ndarray:
    """(n, len(ATTRIBUTES)) array of 0/1."""
    return np.stack([params[a] for a in ATTRIBUTES], 1).astype(np.int64)


def write_dataset(
    folder: str | Path,
    n: int,
    *,
    size: int = 64,
    seed: int = 0,
    attributes: Sequence[str] = ATTRIBUTES,
    style: str = "mixed",
) -> Path:
    """PNG files plus a labels.csv (fader's labelled-folder format); returns the folder."""
    from PIL import Image

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    params = sample(n, seed, style=style)
    table = labels(params)
    columns = [ATTRIBUTES.index(a) for a in attributes]
    rows = []
    for start in range(0, n, 512):
        chunk = {k: val[start : start + 512] for k, val in params.items()}
        for i, image in enumerate(render(chunk, size), start):
            name = f"images/{i:06d}.png"
            Image.fromarray(image).save(folder / name)
            rows.append([name, *(int(table[i, c]) for c in columns)])
    with open(folder / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", *attributes])
        writer.writerows(rows)
    return folder

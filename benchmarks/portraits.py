"""A second toy renderer, written apart from fadercli/toyfaces.py and never tuned on: flat-shaded
portraits with other shapes, proportions, outlines, colours and lighting, three binary
attributes (Eyeglasses, Smiling, Hat) and exact counterfactuals.

    python benchmarks/portraits.py OUT_DIR [--faces 6000] [--size 64] [--seed 1000]

writes OUT_DIR/labels.csv and OUT_DIR/images/*.png, a folder `fader train` reads. Research runs are
reported on this renderer's faces beside the toy faces' (docs/experiments.md): a recipe chosen on
one drawing convention has to hold on another that nothing was chosen on.

The drawing is a pure function of each face's parameters (its camera grain comes from a seed of
its own), so flipping one attribute and drawing again gives the face's exact counterfactual.
Differences from toyfaces on purpose: long oval heads with a jaw, skin lit by a directional
light with a shadow side, hair as a fringe band, almond eyes with lids, brows as wedges, a nose
shadow, lips as two arcs; glasses are thick two-tone frames (aviator, square or cat-eye) with a
bar over the bridge and lenses that catch a highlight; smiles widen and open the mouth, show a
band of teeth and raise round cheeks; hats are berets, bowlers or headscarves that cover the
fringe. Backgrounds are vignettes or two-tone splits; outlines vary from none to heavy ink.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

ATTRIBUTES = ("Eyeglasses", "Smiling", "Hat")
_SKIN = np.array(
    [[236, 200, 170], [205, 160, 125], [165, 115, 85], [110, 75, 55], [245, 215, 195], [190, 140, 110]], float
)
_HAIR = np.array([[20, 20, 30], [70, 45, 30], [120, 80, 40], [200, 160, 90], [170, 60, 30], [120, 120, 125]], float)


def sample(n: int, seed: int = 0, p: float = 0.5) -> dict[str, np.ndarray]:
    """Parameters of n portraits; each attribute present with probability p, independently."""
    rng = np.random.default_rng(seed)
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    params = {
        "cx": u(0.46, 0.54),
        "cy": u(0.50, 0.58),
        "rx": u(0.22, 0.28),
        "ry": u(0.29, 0.35),
        "tilt": rng.normal(0, 0.08, n),
        "jaw": u(0.0, 0.35),
        "skin": _SKIN[rng.integers(0, len(_SKIN), n)] + rng.normal(0, 8, (n, 3)),
        "hair": _HAIR[rng.integers(0, len(_HAIR), n)] + rng.normal(0, 10, (n, 3)),
        "fringe": u(0.25, 0.5),
        "light": u(-1, 1),
        "bg_kind": rng.integers(0, 2, n),
        "bg_a": rng.uniform(40, 230, (n, 3)),
        "bg_b": rng.uniform(40, 230, (n, 3)),
        "ink": rng.choice([0.0, 0.8, 1.6, 2.4], n),
        "eye_gap": u(0.32, 0.42),
        "eye_y": u(-0.08, 0.0),
        "eye_w": u(0.11, 0.15),
        "iris": rng.uniform(20, 120, (n, 3)),
        "mouth_w": u(0.22, 0.32),
        "mouth_y": u(0.42, 0.5),
        "lip": rng.uniform(120, 200, (n, 3)) * [1.0, 0.55, 0.55],
        "frame_kind": rng.integers(0, 3, n),
        "frame": rng.uniform(0, 90, (n, 3)),
        "frame_w": u(0.03, 0.06),
        "tint": u(0.0, 0.3),
        "hat_kind": rng.integers(0, 3, n),
        "hat": rng.uniform(30, 220, (n, 3)),
        "grain": rng.integers(0, 2**31, n),
    }
    for name in ATTRIBUTES:
        params[name] = (rng.random(n) < p).astype(np.int64)
    return params


def flipped(params: dict[str, np.ndarray], attribute: str) -> dict[str, np.ndarray]:
    out = dict(params)
    out[attribute] = 1 - params[attribute]
    return out


def labels(params: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([params[name] for name in ATTRIBUTES], 1)


def _col(v: np.ndarray) -> np.ndarray:
    return v[:, None, None]


def _cover(inside: np.ndarray, px: float) -> np.ndarray:
    """Coverage from a signed distance in face units (negative inside), anti-aliased over a pixel."""
    return np.clip(0.5 - inside / px, 0, 1)


def _lay(canvas: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> None:
    canvas += alpha[..., None] * (colour[:, None, None, :] - canvas)


def render(params: dict[str, np.ndarray], size: int = 64) -> np.ndarray:
    """uint8 (n, size, size, 3) RGB."""
    n = len(params["cx"])
    px = 1.0 / size
    g = (np.arange(size) + 0.5) / size
    X, Y = np.broadcast_to(g[None, None, :], (n, size, size)), np.broadcast_to(g[None, :, None], (n, size, size))
    # Face coordinates: centred on the head, tilted, in head-width units.
    c, s = np.cos(_col(params["tilt"])), np.sin(_col(params["tilt"]))
    dx, dy = X - _col(params["cx"]), Y - _col(params["cy"])
    u, v = (c * dx + s * dy) / _col(params["rx"]), (-s * dx + c * dy) / _col(params["rx"])
    unit = px / params["rx"][:, None, None]  # a pixel in face units
    aspect = _col(params["ry"] / params["rx"])

    canvas = np.empty((n, size, size, 3))
    split = (X + Y > 1.0)[..., None]
    vignette = 1 - 0.5 * ((X - 0.5) ** 2 + (Y - 0.5) ** 2)[..., None]
    canvas[:] = np.where(
        _col(params["bg_kind"])[..., None] == 0,
        params["bg_a"][:, None, None] * vignette,
        np.where(split, params["bg_a"][:, None, None], params["bg_b"][:, None, None]),
    )

    # Head: an oval whose lower half narrows into a jaw.
    jaw = 1 - _col(params["jaw"]) * np.clip(v / aspect, 0, 1) ** 2
    head = np.sqrt((u / jaw) ** 2 + (v / aspect) ** 2) - 1
    light = 1 + 0.18 * _col(params["light"]) * np.clip(u, -1, 1)
    skin = params["skin"][:, None, None, :] * light[..., None]
    cover = _cover(head, unit)
    canvas += cover[..., None] * (np.clip(skin, 0, 255) - canvas)
    ink = _col(params["ink"]) * unit
    _lay(canvas, np.zeros((n, 3)), np.clip(1 - np.abs(head) / np.maximum(ink, 1e-6), 0, 1) * (ink > 0))

    # Hair: a fringe band over the top of the head.
    top = -aspect * (1 - _col(params["fringe"]))
    fringe = np.maximum(head + 0.02, v - top)
    _lay(canvas, params["hair"], _cover(fringe, unit))

    eye_y, gap, w = (
        _col(params["eye_y"]) * aspect,
        _col(params["eye_gap"]),
        _col(params["eye_w"]) / _col(params["rx"]) * 0.25,
    )
    for side in (-1, 1):
        ex = u - side * gap
        almond = np.sqrt((ex / (w * 1.6)) ** 2 + ((v - eye_y) / (w * 0.7)) ** 2) - 1
        _lay(canvas, np.full((n, 3), 250.0), _cover(almond, unit / w))
        iris = np.sqrt(ex**2 + (v - eye_y) ** 2) - w * 0.6
        _lay(canvas, params["iris"], _cover(iris, unit) * _cover(almond, unit / w))
        lid = np.abs(almond) - 0.12
        _lay(canvas, params["skin"] * 0.45, _cover(lid, unit / w) * (v < eye_y))
        brow = np.maximum(np.abs(ex) - w * 1.5, np.abs(v - eye_y + w * 1.7 + 0.06 * ex * side) - w * 0.35)
        _lay(canvas, params["hair"] * 0.7, _cover(brow, unit))
    nose = np.maximum(np.abs(u) - 0.06 + 0.25 * (v - 0.25), np.abs(v - 0.18) - 0.14)
    _lay(canvas, params["skin"] * 0.75, 0.6 * _cover(nose, unit))

    # Mouth: closed lips, or (Smiling) a wider open smile with teeth and raised cheeks.
    smile = _col(params["Smiling"]).astype(float)
    mw = _col(params["mouth_w"]) * (1 + 0.3 * smile)
    my = _col(params["mouth_y"]) * aspect
    curve = v - my + smile * 0.35 * (u / mw) ** 2 * mw  # the corners rise
    lips = np.maximum(np.abs(u) / mw - 1, np.abs(curve) / (0.035 + 0.05 * smile) - 1)
    _lay(canvas, params["lip"], _cover(lips * 0.04, unit))
    teeth = np.maximum(np.abs(u) / (mw * 0.8) - 1, np.abs(curve + 0.005) / 0.025 - 1)
    _lay(canvas, np.full((n, 3), 245.0), _cover(teeth * 0.03, unit) * smile)
    for side in (-1, 1):
        cheek = np.sqrt((u - side * (mw + 0.12)) ** 2 + (v - my + 0.12) ** 2) - 0.12
        _lay(canvas, np.clip(params["skin"] * [1.05, 0.85, 0.85], 0, 255), 0.7 * _cover(cheek, unit) * smile)

    # Eyeglasses: two frames (aviator drop, square or cat-eye), a bar over the bridge, tinted lenses.
    glasses = _col(params["Eyeglasses"]).astype(float)
    kind, fw = _col(params["frame_kind"]), _col(params["frame_w"]) / _col(params["rx"]) * 0.5
    for side in (-1, 1):
        lx, ly = (u - side * gap) / (w * 2.3), (v - eye_y) / (w * 1.9)
        aviator = np.sqrt(lx**2 + (ly / (1 + 0.25 * np.tanh(3 * ly))) ** 2)  # wider below
        square = np.maximum(np.abs(lx), np.abs(ly) * 1.15)
        cat = np.sqrt(lx**2 + ly**2) * (1 - 0.2 * np.clip(side * lx, 0, 1) * np.clip(-ly, 0, 1))  # raised outer corner
        shape = np.where(kind == 0, aviator, np.where(kind == 1, square, cat)) - 1
        _lay(canvas, params["frame"] * 0.4 + 120, _col(params["tint"]) * _cover(shape, unit / w) * glasses)
        rim = np.abs(shape * w * 2.3) - fw
        _lay(canvas, params["frame"], _cover(rim, unit) * glasses)
        shine = np.sqrt((lx + 0.35) ** 2 + (ly + 0.35) ** 2) - 0.18
        _lay(canvas, np.full((n, 3), 255.0), 0.5 * _cover(shine, unit / (w * 2)) * glasses * (shape < 0))
    bar = np.maximum(np.abs(u) - gap + w * 2.2, np.abs(v - eye_y + w * 1.2) - fw)
    _lay(canvas, params["frame"], _cover(bar, unit) * glasses)

    # Hat: a beret, a bowler or a headscarf, over the fringe.
    hat = _col(params["Hat"]).astype(float)
    hk = _col(params["hat_kind"])
    beret = np.sqrt(((u + 0.25) / 1.35) ** 2 + ((v + aspect * 0.95) / 0.45) ** 2) - 1
    crown = np.sqrt((u / 0.85) ** 2 + ((v + aspect * 1.05) / 0.55) ** 2) - 1
    brim = np.maximum(np.abs(u) - 1.25, np.abs(v + aspect * 0.72) - 0.07)
    bowler = np.minimum(np.maximum(crown, v + aspect * 0.72), brim)
    scarf = np.maximum(head - 0.12, v + aspect * (0.55 - _col(params["fringe"]) * 0.3))
    hat_shape = np.where(hk == 0, beret, np.where(hk == 1, bowler, scarf))
    _lay(canvas, params["hat"], _cover(hat_shape, unit) * hat)
    _lay(canvas, params["hat"] * 0.6, _cover(np.abs(hat_shape) - 0.04, unit) * hat)

    grain = np.stack([np.random.default_rng(int(s)).normal(0, 3, (size, size, 1)) for s in params["grain"]])
    return np.clip(np.rint(canvas + grain), 0, 255).astype(np.uint8)


def write_dataset(folder: Path, n: int, size: int = 64, seed: int = 0) -> Path:
    """`fader train`'s labels.csv layout: images/NNNNN.png and one 1/0 column per attribute."""
    from PIL import Image

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    params = sample(n, seed)
    rows = []
    for start in range(0, n, 500):
        part = {k: v[start : start + 500] for k, v in params.items()}
        for i, picture in enumerate(render(part, size)):
            name = f"images/{start + i:05d}.png"
            Image.fromarray(picture).save(folder / name)
            rows.append([name, *labels(part)[i].tolist()])
    with open(folder / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([["image", *ATTRIBUTES], *rows])
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--faces", type=int, default=6000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()
    print(write_dataset(args.out, args.faces, args.size, args.seed))


if __name__ == "__main__":
    main()

"""How well faces are found: faces cut by the border, small beside large, greyscale and faded,
rolled, and photos without a person, all made from the test portraits.

    python benchmarks/faces.py [--no-person DIR ...] [--threshold T]

Each case is a photo made from a portrait whose eyes are known (found on the untouched portrait),
so a find is matched to a face by its eyes, and its eye error is how far the true eyes land from
CelebA's template in the 256 px crop of the find's alignment (mean of the two eyes, in % of the crop).
Prints, per kind of case: faces found / faces there, false finds, median and largest eye error and
seconds; then every false find and every face missed. Photos in --no-person folders count as more
photos without a person (every face found there is false).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TESTDATA = ROOT / "tests" / "data"
PORTRAITS = {"astronaut": TESTDATA / "astronaut.png", "grace": ROOT / "tests" / "data" / "grace_hopper.jpg"}
NO_PERSON = [TESTDATA / f"{n}.png" for n in ("brick", "clock_motion", "coffee", "coins", "horse")]
NO_PERSON.append(ROOT / "tests" / "data" / "chelsea.jpg")
# Animals YuNet takes for people (0.80-0.85 at 960 px): what a check against animal faces must turn away.
NO_PERSON += [TESTDATA / "proboscis_monkeys.jpg", TESTDATA / "bonnet_macaque.jpg"]


def resized(rgb: np.ndarray, s: float) -> np.ndarray:
    size = (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)


def scaled(points: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Points in an image resized from `before` to `after` pixels (pixel centres kept)."""
    return (points + 0.5) * (after.shape[1] / before.shape[1], after.shape[0] / before.shape[0]) - 0.5


def faded(rgb: np.ndarray, contrast: float) -> np.ndarray:
    mean = rgb.mean()
    return np.clip(mean + contrast * (rgb.astype(np.float32) - mean), 0, 255).astype(np.uint8)


def grey(rgb: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def edge_cases(portraits):
    """A share of the face's box beyond one side of the photo, or a quarter beyond two."""
    for name, (rgb, face) in portraits.items():
        for width in (60, 150, 320):
            image = resized(rgb, width / face.box[2])
            eyes = scaled(face.points[:2], rgb, image)
            x, y, w, h = (v * image.shape[1] / rgb.shape[1] for v in face.box)
            for share in (0.25, 0.33, 0.45):
                x0, y0 = round(x + share * w), round(y + share * h)
                x1, y1 = round(x + (1 - share) * w), round(y + (1 - share) * h)
                yield f"cut {share}", f"{name} {width} left", image[:, x0:], [eyes - (x0, 0)]
                yield f"cut {share}", f"{name} {width} right", image[:, :x1], [eyes]
                yield f"cut {share}", f"{name} {width} top", image[y0:], [eyes - (0, y0)]
                yield f"cut {share}", f"{name} {width} bottom", image[:y1], [eyes]
            x0, y0 = round(x + 0.25 * w), round(y + 0.25 * h)
            yield "cut corner", f"{name} {width}", image[y0:, x0:], [eyes - (x0, y0)]


def paste_head(canvas, rgb, face, width, at):
    x, y, w, h = face.box
    x0, y0 = max(0, int(x - 0.6 * w)), max(0, int(y - 0.6 * h))
    head = rgb[y0 : int(y + 1.4 * h), x0 : int(x + 1.6 * w)]
    scaled_head = resized(head, width / w)
    hh, ww = scaled_head.shape[:2]
    canvas[at[1] : at[1] + hh, at[0] : at[0] + ww] = scaled_head
    return scaled(face.points[:2] - (x0, y0), head, scaled_head) + at


def small_cases(portraits):
    """A small face beside a 300 px one on three backgrounds; rows of small faces alone."""
    backgrounds = {"grey": None, "brick": TESTDATA / "brick.png", "coffee": TESTDATA / "coffee.png"}
    names = list(portraits)
    for small in (20, 25, 30, 40):
        for background, path in backgrounds.items():
            for big, little in (names, names[::-1]):
                if path is None:
                    canvas = np.full((1000, 1400, 3), 110, np.uint8)
                else:
                    canvas = cv2.resize(cv2.imread(str(path))[..., ::-1], (1400, 1000))
                truths = [paste_head(canvas, *portraits[big], 300, (100, 100))]
                truths.append(paste_head(canvas, *portraits[little], small, (1000, 600)))
                yield f"{small} px beside 300", f"{big} + {little} on {background}", canvas, truths
    for small in (14, 18, 22, 30):
        canvas = np.full((1200, 1600, 3), 110, np.uint8)
        truths = [
            paste_head(canvas, *portraits[names[k % 2]], small, (100 + 300 * k, 400 + 200 * (k % 2))) for k in range(5)
        ]
        yield f"{small} px row", "five faces", canvas, truths


def tone_cases(portraits):
    rng = np.random.default_rng(0)
    for name, (rgb, face) in portraits.items():
        for width in (40, 110, 250):
            image = resized(rgb, width / face.box[2])
            eyes = [scaled(face.points[:2], rgb, image)]
            blurred = cv2.GaussianBlur(grey(image), (0, 0), 1.2)
            variants = {
                "grey": grey(image),
                "contrast 0.3": faded(image, 0.3),
                "contrast 0.15": faded(image, 0.15),
                "grey, contrast 0.2": faded(grey(image), 0.2),
                "dark": (image * 0.18).astype(np.uint8),
                "washed out": (255 - (255 - image.astype(np.float32)) * 0.25).astype(np.uint8),
                "old print": np.clip(faded(blurred, 0.35) + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8),
                "noise 20": np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8),
                "jpeg 10": cv2.imdecode(
                    cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 10])[1], cv2.IMREAD_UNCHANGED
                ),
            }
            for kind, pixels in variants.items():
                yield kind, f"{name} {width}", pixels, eyes


def tilt_cases(portraits):
    for name, (rgb, face) in portraits.items():
        for degrees in (20, 35, 50, 70, 90, 135, 180):
            turn = cv2.getRotationMatrix2D(tuple(face.points[:2].mean(axis=0)), degrees, 1.0)
            image = cv2.warpAffine(rgb, turn, rgb.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
            yield f"rolled {degrees}", name, image, [face.points[:2] @ turn[:, :2].T + turn[:, 2]]


def no_person_cases(paths):
    for path in paths:
        rgb = np.ascontiguousarray(cv2.imread(str(path))[..., ::-1])
        for s in (0.5, 1, 2.5):
            yield "no person", f"{path.name} x{s}", resized(rgb, s), []
        yield "no person", f"{path.name} grey, contrast 0.35", faded(grey(rgb), 0.35), []


def match(found, truths):
    """Each true face's find (by the eyes' midpoint, within half the eye distance), and the false finds."""
    pairs, left = {}, list(found)
    for k, eyes in enumerate(truths):
        reach = 0.5 * np.linalg.norm(eyes[1] - eyes[0])
        near = [(np.linalg.norm(f.points[:2].mean(axis=0) - eyes.mean(axis=0)), i) for i, f in enumerate(left)]
        near = [n for n in near if n[0] < reach]
        if near:
            pairs[k] = left.pop(min(near)[1])
    return pairs, left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-person", type=Path, nargs="*", default=[], help="folders of photos without a person")
    parser.add_argument("--threshold", type=float, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from fadercli.faces import DEFAULT_THRESHOLD, alignment_for, find_faces, template
    from fadercli.media.formats import expand_inputs

    threshold = args.threshold or DEFAULT_THRESHOLD
    portraits = {}
    for name, path in PORTRAITS.items():
        rgb = np.ascontiguousarray(cv2.imread(str(path))[..., ::-1])
        [face] = find_faces(rgb)
        portraits[name] = rgb, face
    no_person = NO_PERSON + expand_inputs(args.no_person)
    cases = [
        *edge_cases(portraits),
        *small_cases(portraits),
        *tone_cases(portraits),
        *tilt_cases(portraits),
        *no_person_cases(no_person),
    ]
    totals = collections.defaultdict(lambda: {"faces": 0, "found": 0, "false": 0, "errors": [], "seconds": 0.0})
    false_finds, missed = [], []
    for kind, name, pixels, truths in cases:
        started = time.perf_counter()
        found = find_faces(np.ascontiguousarray(pixels), threshold=threshold)
        row = totals[kind]
        row["seconds"] += time.perf_counter() - started
        pairs, false = match(found, truths)
        row["faces"] += len(truths)
        row["found"] += len(pairs)
        row["false"] += len(false)
        for k, face in pairs.items():
            error = np.linalg.norm(alignment_for(face).to_crop(truths[k]) - template(256)[:2], axis=1).mean()
            row["errors"].append(100 * error / 256)
        false_finds += [f"{kind}: {name}: {f.box[2]:.0f} px wide, score {f.score:.3f}" for f in false]
        missed += [f"{kind}: {name}: face {k}" for k in range(len(truths)) if k not in pairs]
    print(f"threshold {threshold}")
    print(f"{'kind':<22} {'found':>9} {'false':>6} {'eye err median':>15} {'max':>7} {'seconds':>8}")
    for kind, row in totals.items():
        errors = row["errors"]
        median = f"{statistics.median(errors):.2f}%" if errors else "-"
        worst = f"{max(errors):.2f}%" if errors else "-"
        print(
            f"{kind:<22} {row['found']:>4}/{row['faces']:<4} {row['false']:>6} {median:>15} {worst:>7} {row['seconds']:>8.1f}"
        )
    faces = sum(r["faces"] for r in totals.values())
    found = sum(r["found"] for r in totals.values())
    errors = [e for r in totals.values() for e in r["errors"]]
    print(
        f"all: {found}/{faces} faces found ({100 * found / faces:.1f}%), {len(false_finds)} false finds, "
        f"median eye error {statistics.median(errors):.2f}% of the crop"
    )
    for line in false_finds:
        print("false find:", line)
    for line in missed:
        print("missed:", line)


if __name__ == "__main__":
    main()

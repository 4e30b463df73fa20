"""A 10-step sweep of one face vs ten separate edits of it, inside one process.

    python benchmarks/sweep.py [--img-size 256] [--steps 10] [--repeats 5]

Both go through the Python API on tests/data/astronaut.png with a randomly initialised
model of the release's architecture at --img-size (weights do not change the time):
  1. `Fader.sweep(photo, "Smiling", steps=10)`: one detection, alignment, encoding and estimate,
     then the ten decodes in one batch and ten paste-backs;
  2. ten `Fader.edit(photo, {"Smiling": v})`, one per value of the same range.
Prints the median seconds of each (interleaved repeats) and their ratio (target <= 0.5).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--img-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    shared_yunet = ROOT / "tests" / "data" / "face_detection_yunet_2026may.onnx"
    if "FADER_DETECTOR_MODEL" not in os.environ and shared_yunet.is_file():  # no download in the timing
        os.environ["FADER_DETECTOR_MODEL"] = str(shared_yunet)
    import numpy as np
    import torch

    from fadercli.api import Fader
    from fadercli.media.images import as_photo
    from fadercli.net.model import AutoEncoder, FaderConfig

    torch.manual_seed(0)
    config = FaderConfig((("Smiling", 2),), img_size=args.img_size, n_layers=min(6, args.img_size.bit_length() - 3))
    fader = Fader([AutoEncoder(config).eval()], device="cpu")
    photo = as_photo(ROOT / "tests" / "data" / "astronaut.png")
    values = np.linspace(0.0, 1.0, args.steps).tolist()

    def sweep() -> None:
        fader.sweep(photo, "Smiling", steps=args.steps, value_range=(values[0], values[-1]))

    def edits() -> None:
        for v in values:
            fader.edit(photo, {"Smiling": v}, face="largest")

    sweep(), edits()  # warm
    times: dict[str, list[float]] = {"sweep": [], "edits": []}
    for _ in range(args.repeats):
        for name, fn in (("sweep", sweep), ("edits", edits)):
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    sweep_s, edits_s = statistics.median(times["sweep"]), statistics.median(times["edits"])
    print(f"{args.img_size} px model, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(
        f"{args.steps}-step sweep {sweep_s:.3f} s; {args.steps} separate edits {edits_s:.3f} s; "
        f"ratio {sweep_s / edits_s:.2f} (target <= 0.5)"
    )


if __name__ == "__main__":
    main()

"""`fader edit DIR --no-align` on a folder in one process vs one process per image.

    OMP_NUM_THREADS=1 python benchmarks/edit_folder.py [--images 400] [--sample 10] [--img-size 64]

Makes a folder of toy face images and a training-run folder holding a model of the architecture
`fader train --img-size N` builds (randomly initialised: weights do not change the time), then
times, as whole processes:
  1. `fader edit DIR --model RUN --set Smiling=1 --no-align --out-dir OUT` over all the images;
  2. the same command on single images, for a sample of them (one process each);
and prints seconds per image for both and their ratio, beside `python -c "import torch"`, the
floor every fader process pays.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--sample", type=int, default=10, help="images edited one process each")
    parser.add_argument("--img-size", type=int, default=64, help="the model's resolution")
    parser.add_argument("--photo-size", type=int, default=128, help="the images' side in pixels")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import torch
    from PIL import Image

    from fadercli.attributes import AttributeSet
    from fadercli.net.model import AutoEncoder
    from fadercli.train import toyfaces
    from fadercli.train.config import TrainConfig
    from fadercli.weights.format import default_slider_ranges as slider_ranges
    from fadercli.weights.format import save_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images, run = tmp / "images", tmp / "run"
        images.mkdir()
        run.mkdir()
        params = toyfaces.sample(args.images, seed=1)
        for i, image in enumerate(toyfaces.render(params, args.photo_size)):
            Image.fromarray(image).save(images / f"face{i:04d}.png")
        attributes = AttributeSet.binary(toyfaces.ATTRIBUTES)
        torch.manual_seed(0)
        model = AutoEncoder(TrainConfig(img_size=args.img_size).resolved().model_config(attributes)).eval()
        save_model(run / "model.safetensors", model, slider_ranges=slider_ranges(attributes))

        fader = [sys.executable, "-m", "fadercli", "edit"]
        common = ["--model", str(run), "--set", "Smiling=1", "--no-align", "--quiet"]
        floor = statistics.median(timed([sys.executable, "-c", "import torch"]) for _ in range(3))
        folder = timed([*fader, str(images), *common, "--out-dir", str(tmp / "out_folder")])
        sample = sorted(images.iterdir())[:: max(1, args.images // args.sample)][: args.sample]
        single = [timed([*fader, str(path), *common, "--out-dir", str(tmp / "out_single")]) for path in sample]
        written = len(list((tmp / "out_folder").iterdir()))
        assert written == args.images, f"{written} of {args.images} images written"

    per_folder, per_single = folder / args.images, statistics.mean(single)
    threads = os.environ.get("OMP_NUM_THREADS", "all")
    print(
        f"fader edit --no-align, {args.images} toy images of {args.photo_size} px, a {args.img_size} px model,"
        f" torch {torch.__version__}, OMP_NUM_THREADS={threads}"
    )
    rows = [
        ('python -c "import torch" (median of 3)', floor, None),
        ("one process, the whole folder", folder, per_folder),
        (f"one process per image (mean of {len(single)})", sum(single), per_single),
    ]
    print(f"{'':44}{'seconds':>10}{'s / image':>12}")
    for name, seconds, per_image in rows:
        print(f"{name:44}{seconds:10.2f}" + (f"{per_image:12.3f}" if per_image is not None else ""))
    print(f"one process for the folder is {per_single / per_folder:.0f}x faster per image")


if __name__ == "__main__":
    main()

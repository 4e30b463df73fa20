"""Editing a clip: fader's video path (Fader.edit_video) vs Fader.edit on every frame as a photo.

    OMP_NUM_THREADS=1 python benchmarks/video.py [--frames 40] [--repeats 3] [--rss 10 60]

A 640 x 360 clip at 25 frames/s with one face (the test portrait, the camera drifting slowly) is
edited with models of the architectures people run, randomly initialised (weights do not change
the time): `fader train --img-size 64`'s and the authors' 256 px one (init_fm 32, max_fm 512,
6 blocks). Per model, timed alternately, median of --repeats runs:
  1. per frame: decode, Fader.edit(frame) (the full detector, the values estimated afresh), encode;
  2. Fader.edit_video: the whole clip, both passes, written as fader writes it.
Then the peak RSS (VmHWM of a fresh process) of editing clips of each length in --rss seconds
with the 64 px model: it should not grow with the clip.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
SIZE = (640, 360)


def peak_kib() -> int:
    """This process's own peak RSS (VmHWM; ru_maxrss would carry the parent's over fork + exec)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def make_model(path: Path, size: int) -> Path:
    import torch

    from fadercli.attributes import AttributeSet
    from fadercli.net.model import AutoEncoder, FaderConfig
    from fadercli.train.config import TrainConfig
    from fadercli.weights.format import default_slider_ranges as slider_ranges
    from fadercli.weights.format import save_model

    attributes = AttributeSet.binary(["Smiling"])
    if size == 256:  # the authors' release
        config = FaderConfig(attributes=attributes.pairs(), img_size=256, init_fm=32, max_fm=512, n_layers=6)
    else:
        config = TrainConfig(img_size=size).resolved().model_config(attributes)
    torch.manual_seed(0)
    save_model(path, AutoEncoder(config).eval(), slider_ranges=slider_ranges(attributes))
    return path


def make_clip(path: Path, seconds: float) -> Path:
    import cv2
    import numpy as np
    from clips import camera, portrait
    from clips import make_clip as write

    n = round(25 * seconds)
    source = portrait()

    def pictures():
        for t in range(n):
            m = camera(0, SIZE, "still", 0.45)
            m[0, 2] += 30 * np.sin(t / 40)  # a slow drift, so the face is followed, not found in place
            yield cv2.warpAffine(source, m, SIZE, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)

    return write(path, n, SIZE, pictures=pictures())


def per_frame(fader, clip: Path, out: Path) -> tuple[float, float]:
    """(seconds, CPU seconds of all threads) for the clip edited as photos, one frame at a time,
    written as fader writes video."""
    import av

    from fadercli.media import clips, encoder
    from fadercli.media.images import from_array

    info = clips.probe(clip)
    started, cpu = time.perf_counter(), time.process_time()
    writer = encoder.Writer(out, "mp4", size=(info.width, info.height), rate=info.rate, time_base=info.time_base)
    for frame in clips.decode(info):
        edited = fader.edit(from_array(clips.rgb(frame)), {"Smiling": 1.0}).image
        yuv = av.VideoFrame.from_ndarray(edited.pixels, format="rgb24").reformat(format="yuv420p")
        writer.write(clips.planes(yuv), frame.pts, frame.duration)
    writer.close()
    return time.perf_counter() - started, time.process_time() - cpu


def video(fader, clip: Path, out: Path) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    fader.edit_video(clip, out, {"Smiling": 1.0})
    return time.perf_counter() - started, time.process_time() - cpu


def probe(clip: str, model: str, out: str) -> None:
    """(--probe) Edit one clip in this fresh process and print its peak RSS in KiB."""
    from fadercli.api import Fader

    Fader.load(model, device="cpu", quiet=True).edit_video(clip, out, {"Smiling": 1.0})
    print(peak_kib())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40, help="frames of the timed clip")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="model sizes")
    parser.add_argument("--rss", type=float, nargs="*", default=[10, 60], help="clip lengths (s) for the RSS probe")
    parser.add_argument("--probe", nargs=3, metavar=("CLIP", "MODEL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        return probe(*args.probe)

    import torch

    from fadercli.api import Fader

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = make_clip(tmp / "clip.mp4", args.frames / 25)
        print(
            f"a {SIZE[0]} x {SIZE[1]} clip of {args.frames} frames, one face; torch {torch.__version__},"
            f" {torch.get_num_threads()} thread(s); medians of {args.repeats}"
        )
        print("frames/s (wall clock) and CPU ms a frame (all threads: on a shared machine the steadier figure)")
        print(f"{'model':>8}{'per frame':>22}{'edit_video':>22}{'ratio':>14}")
        for size in args.sizes:
            fader = Fader.load(make_model(tmp / f"m{size}.safetensors", size), device="cpu", quiet=True)
            base, ours = [], []
            for k in range(args.repeats):
                base.append(per_frame(fader, clip, tmp / f"base{k}.mp4"))
                ours.append(video(fader, clip, tmp / f"ours{k}.mp4"))
            (bw, bc), (ow, oc) = ([statistics.median(x) for x in zip(*runs)] for runs in (base, ours))
            n = args.frames
            print(
                f"{size:>6}px{n / bw:>9.2f} /s {1000 * bc / n:>6.0f} ms{n / ow:>9.2f} /s {1000 * oc / n:>6.0f} ms"
                f"{bw / ow:>6.1f}x {bc / oc:>4.1f}x"
            )
        if args.rss:
            model = make_model(tmp / "rss.safetensors", 64)
            print("peak RSS, 64 px model (a fresh process each):")
            for seconds in args.rss:
                long = make_clip(tmp / f"long{seconds:g}.mp4", seconds)
                started = time.perf_counter()
                kib = subprocess.run(
                    [sys.executable, __file__, "--probe", str(long), str(model), str(tmp / "long_out.mp4")],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.split()[-1]
                took = time.perf_counter() - started
                print(
                    f"  {seconds:>5g} s clip ({round(25 * seconds)} frames): {int(kib) / 1024:7.1f} MiB"
                    f"  ({round(25 * seconds) / took:.1f} frames/s, start-up included)"
                )


if __name__ == "__main__":
    main()

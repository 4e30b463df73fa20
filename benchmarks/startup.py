"""Start-up cost of whole `fader` processes against the floor every PyTorch program pays.

    python benchmarks/startup.py [--repeats 7]

Times, as whole processes (median of --repeats, interleaved so load on the machine hits all alike):
  1. `python -c "import torch"`            the floor
  2. `fader --help`                         must not import torch at all
  3. `fader edit photo.png --model M --set Smiling=1 -o out.png`, one photo, cached model
and prints the ratios the README's performance table reports, with peak RSS from /usr/bin/time -v
where that program exists.
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(command: list[str], env: dict) -> tuple[float, int | None]:
    """(seconds, peak RSS in KiB or None) of one process."""
    timer = "/usr/bin/time" if Path("/usr/bin/time").exists() else shutil.which("time")
    wrapped = [timer, "-v", *command] if timer else command
    started = time.perf_counter()
    done = subprocess.run(wrapped, cwd=ROOT, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    return seconds, int(peak.group(1)) if peak else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from fadercli.net.model import AutoEncoder, FaderConfig
    from fadercli.weights.format import save_model

    # Byte-compile the package as `pip install` does: an editable checkout under
    # PYTHONDONTWRITEBYTECODE would otherwise compile every module in every run (~0.3 s here).
    compileall.compile_dir(ROOT / "fadercli", quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "smiling.safetensors"
        save_model(model, AutoEncoder(FaderConfig((("Smiling", 2),), img_size=64, init_fm=16, max_fm=256, n_layers=5)))
        photo = ROOT / "tests" / "data" / "astronaut.png"
        python, fader = sys.executable, [sys.executable, "-m", "fadercli"]
        commands = {
            "import torch": [python, "-c", "import torch"],
            "fader --help": [*fader, "--help"],
            "fader edit (one photo)": [
                *fader,
                "edit",
                str(photo),
                "--model",
                str(model),
                "--set",
                "Smiling=1",
                "-o",
                str(tmp / "out.png"),
                "--force",
                "--quiet",
            ],
        }
        env = dict(os.environ)
        shared_yunet = ROOT / "tests" / "data" / "face_detection_yunet_2026may.onnx"
        if "FADER_DETECTOR_MODEL" not in env and shared_yunet.is_file():  # no download in the timing
            env["FADER_DETECTOR_MODEL"] = str(shared_yunet)
        timings: dict[str, list[float]] = {name: [] for name in commands}
        peaks: dict[str, list[int]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                seconds, peak = run(command, env)
                timings[name].append(seconds)
                if peak:
                    peaks[name].append(peak)
    median = {name: statistics.median(values) for name, values in timings.items()}
    floor = median["import torch"]
    print(f"median of {args.repeats} runs")
    print(f"{'process':<24} {'seconds':>8} {'vs import torch':>16} {'peak RSS MiB':>13}")
    for name, seconds in median.items():
        rss = f"{statistics.median(peaks[name]) / 1024:.0f}" if peaks[name] else "-"
        print(f"{name:<24} {seconds:>8.3f} {seconds / floor:>15.2f}x {rss:>13}")
    print(f"fader --help: {median['fader --help']:.3f} s (target <= 0.25 s and < 0.2x import torch)")
    extra = median["fader edit (one photo)"] - floor
    print(f"fader edit beyond import torch: {extra:.3f} s (target <= 0.6 s)")


if __name__ == "__main__":
    main()

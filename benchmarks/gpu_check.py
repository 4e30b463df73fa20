"""The CUDA paths in one run of at most five minutes, for the day a GPU machine is lent: what works,
how fast, and every failure (each check runs on its own; one failing does not stop the others).

    python benchmarks/gpu_check.py                 # on a CUDA machine
    python benchmarks/gpu_check.py --device cpu    # the same checks on the CPU (a dry run of the script)

Checks, each at --precision fp32 and auto (bfloat16 on GPUs that have it, else float16):
- an edit and a 10-step sweep of the test portrait with the authors' 256 px architecture (random
  weights: speed, not quality), photos/s and sweeps/s;
- the server's render path (an Analysis rendered at new slider values, as each request of `fader
  serve` is), renders/s;
- a short clip (48 frames, 320 x 240, tests/clips.py) through `Fader.edit_video`, frames/s;
- 200 training steps of the 64 px preset on toy faces (classifier loss on), images/s;
- `torchrun` over all the machine's GPUs with NCCL (`fader train`, 60 steps), or a note where the
  machine has one GPU (NCCL needs a GPU per process).
Prints one line per check and a last line counting failures; exit code 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests" / "data" / "astronaut.png"
YUNET = ROOT / "tests" / "data" / "face_detection_yunet_2026may.onnx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    os.environ.setdefault("FADER_DETECTOR_MODEL", str(YUNET))
    import torch

    from fadercli.devices import describe, pick_device, pick_precision

    device = pick_device(args.device)
    print(f"torch {torch.__version__}; device {describe(device)}; GPUs: {torch.cuda.device_count()}")
    failures: list[str] = []

    def check(name: str, fn) -> None:
        started = time.perf_counter()
        try:
            figure = fn()
            print(f"ok    {name}: {figure} ({time.perf_counter() - started:.1f} s)", flush=True)
        except Exception as e:  # every failure is reported, then the next check runs
            failures.append(name)
            print(f"FAIL  {name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(limit=3)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["FADER_HOME"] = str(tmp / "home")
        model = _random_model(tmp / "256.safetensors")
        data = _toy_data(tmp / "toy")
        clip = tmp / "clip.mp4"
        check("making a clip", lambda: _make_clip(clip))
        for name in ("fp32", "auto"):
            precision = pick_precision(name, device)
            label = f"[{name}: {precision.describe()}]"
            check(f"edit {label}", lambda p=precision: _edit(model, device, p))
            check(f"sweep {label}", lambda p=precision: _sweep(model, device, p))
            check(f"server render path {label}", lambda p=precision: _renders(model, device, p))
            check(f"clip {label}", lambda p=precision: _clip(model, device, p, clip, tmp / f"out_{name}.mp4"))
            check(f"200 training steps {label}", lambda n=name: _training(data, device, n, tmp))
        check("torchrun over all GPUs (NCCL)", lambda: _torchrun(data, device, tmp))
    print(f"{len(failures)} failure(s){': ' + ', '.join(failures) if failures else ''}")
    sys.exit(1 if failures else 0)


def _random_model(path: Path) -> Path:
    import torch

    from fadercli.net.model import AutoEncoder, FaderConfig
    from fadercli.weights.format import save_model

    torch.manual_seed(0)
    model = AutoEncoder(FaderConfig(attributes=(("Smiling", 2),))).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5)  # random but tame
    save_model(path, model, slider_ranges={"Smiling": (-1.0, 2.0)})
    return path


def _toy_data(folder: Path) -> Path:
    from fadercli.train import toyfaces

    return toyfaces.write_dataset(folder, 600, size=64, seed=1, attributes=("Eyeglasses", "Smiling"), style="clean")


def _make_clip(path: Path) -> str:
    import clips

    clips.make_clip(path, n=48, size=(320, 240))
    return f"{path.stat().st_size} bytes"


def _synchronise(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, n: int) -> float:
    fn()  # warm: kernels chosen, memory allocated
    _synchronise(device)
    started = time.perf_counter()
    for _ in range(n):
        fn()
    _synchronise(device)
    return n / (time.perf_counter() - started)


def _edit(model: Path, device, precision) -> str:
    from fadercli.api import Fader

    fader = Fader.load(str(model), device=device, precision=precision, quiet=True)
    rate = _timed(lambda: fader.edit(str(PHOTO), {"Smiling": 1.5}), device, 5)
    return f"{rate:.2f} photos/s"


def _sweep(model: Path, device, precision) -> str:
    from fadercli.api import Fader

    fader = Fader.load(str(model), device=device, precision=precision, quiet=True)
    rate = _timed(lambda: fader.sweep(str(PHOTO), "Smiling", steps=10), device, 3)
    return f"{rate:.2f} sweeps/s (10 steps)"


def _renders(model: Path, device, precision) -> str:
    from fadercli.api import Fader

    fader = Fader.load(str(model), device=device, precision=precision, quiet=True)
    analysis = fader.analyse(str(PHOTO))
    values = iter(v / 10 for v in range(-10, 10**6))
    rate = _timed(lambda: analysis.render(faces={0: {"Smiling": next(values)}}, max_size=800), device, 20)
    return f"{rate:.1f} renders/s"


def _clip(model: Path, device, precision, clip: Path, out: Path) -> str:
    from fadercli.api import Fader

    fader = Fader.load(str(model), device=device, precision=precision, quiet=True)
    started = time.perf_counter()
    result = fader.edit_video(clip, out, {"Smiling": 1.5})
    return f"{result.frames / (time.perf_counter() - started):.1f} frames/s ({result.frames} frames)"


def _training(data: Path, device, precision: str, tmp: Path) -> str:
    from fadercli.net.model import Classifier
    from fadercli.train.classifiers import guide_config
    from fadercli.train.config import TrainConfig
    from fadercli.train.data import prepare
    from fadercli.train.loop import Distributed, Trainer

    dataset = prepare(data, img_size=64, cache_root=tmp / "cache")
    config = TrainConfig(img_size=64, max_steps=200, precision=precision).resolved()
    trainer = Trainer(dataset, config, tmp / f"run_{precision}", device, Distributed(), lambda m: None)
    trainer.guide = Classifier(guide_config(dataset.attributes, 64)).to(device).eval().requires_grad_(False)
    for _ in range(5):
        trainer.train_step(0.5)
    _synchronise(device)
    started = time.perf_counter()
    for _ in range(200):
        losses = trainer.train_step(0.5)
    _synchronise(device)
    rate = 200 * config.batch_size / (time.perf_counter() - started)
    return f"{rate:.0f} img/s (final reconstruction loss {float(losses['rec_loss']):.4f})"


def _torchrun(data: Path, device, tmp: Path) -> str:
    import torch

    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    if gpus < 2:
        return f"not run: {gpus} GPU(s); NCCL needs one GPU per process and two processes to say anything"
    out = tmp / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}",
        "-m", "fadercli", "train", str(data), "--img-size", "64", "--no-align", "--max-steps", "60",
        "--out", str(out), "--device", "cuda", "-q", "--json",
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr.strip()[-800:]}")
    steps = json.loads(done.stdout)["steps"]
    return f"{gpus} processes, {steps} steps in {time.perf_counter() - started:.0f} s (start-up included)"


if __name__ == "__main__":
    main()

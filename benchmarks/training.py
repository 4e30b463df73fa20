"""Training throughput on the CPU: a plain implementation of the paper's step vs fader's Trainer,
in float32 and in the precision `--precision auto` picks on this machine.

    python benchmarks/training.py [--sizes 64 256] [--steps 20] [--repeats 5] [--threads N]

Baseline: the step written the straightforward way, as the authors' release does it, in float32:
the discriminator gets its own (gradient-free) encoding of the batch, then the autoencoder step
encodes again; Adam as torch builds it by default on the CPU. Then `Trainer.train_step`, the code
`fader train` runs, with `--precision fp32` and with `--precision auto` (bfloat16 autocast on a CPU
with AVX-512 BF16 or AMX; float32 elsewhere, and the script says so). All start from the same
weights and see the same batches (the classifier loss off, as the paper); the script checks that
their loss values agree (float32 to rounding; bfloat16 within its 8-bit mantissa), then prints
images/s of whole steps (median of --repeats, interleaved, each timing after two untimed steps)
and the ratios to the baseline. Last, peak RSS of a training epoch over 1x and 10x the images (benchmarks/rss_probe.py).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--steps", type=int, default=20, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch
    import torch.nn.functional as F

    from fadercli.attributes import AttributeSet
    from fadercli.devices import pick_precision
    from fadercli.train.classifiers import attribute_loss, one_hot
    from fadercli.train.config import TrainConfig
    from fadercli.train.data import Dataset
    from fadercli.train.images import ImageCache
    from fadercli.train.loop import Distributed, Trainer, lambda_schedule, lr_scale

    if args.threads:
        torch.set_num_threads(args.threads)
    attrs = AttributeSet.binary(["A", "B", "C", "D"])
    auto = pick_precision("auto", torch.device("cpu"))
    print(f"{torch.get_num_threads()} threads; batch 32; median of {args.repeats} x {args.steps} steps")
    print(f"--precision auto here: {auto.describe()}")
    print(
        f"{'size':>5} {'baseline img/s':>15} {'fader fp32':>11} {'ratio':>6} {'fader auto':>11} {'ratio':>6}"
        f" {'auto/fp32':>9} {'loss diff fp32':>15} {'auto':>9}"
    )
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            n = 256
            rng = np.random.default_rng(0)
            (tmp / "images.u8").write_bytes(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8).tobytes())
            cache = ImageCache(tmp, [f"{i}.png" for i in range(n)], [None] * n, size)
            labels = (rng.random((n, len(attrs))) < 0.5).astype(np.int64)
            dataset = Dataset("random", cache, attrs, labels, np.arange(n), np.arange(0))
            trainers = {}
            for precision in ("fp32", "auto"):
                config = TrainConfig(
                    img_size=size, batch_size=32, max_steps=10**6, lambda_clf=0.0, precision=precision
                ).resolved()
                torch.manual_seed(0)
                trainers[precision] = Trainer(
                    dataset, config, tmp / precision, torch.device("cpu"), Distributed(), lambda m: None
                )
            trainer = trainers["fp32"]
            at = 0.5  # past the adversarial ramp: every term of the loss is on
            ae, dis = copy.deepcopy(trainer.ae), copy.deepcopy(trainer.dis)
            betas = (config.beta1, config.beta2)
            scale = lr_scale(at, config.lr_schedule, config.lr_final)  # where the Trainer's schedule is at `at`
            opt_ae = torch.optim.Adam(ae.parameters(), lr=config.lr * scale, betas=betas)
            opt_dis = torch.optim.Adam(dis.parameters(), lr=config.dis_lr * scale, betas=betas)
            step = 0

            def baseline() -> float:
                nonlocal step
                x, y = trainer.batch(step)
                step += 1
                lam = lambda_schedule(at, config.lambda_lat_dis, config.lambda_ramp)
                with torch.no_grad():  # the discriminator's own encoding of the batch
                    z = ae.encode(x)[0]
                dis.train()
                loss = attribute_loss(attrs, dis(z), y)
                opt_dis.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(dis.parameters(), config.clip_grad_norm)
                opt_dis.step()
                features = ae.encode(x)
                rec = F.mse_loss(ae.decode(features, one_hot(attrs, y)), x)
                dis.eval()
                adv = attribute_loss(attrs, dis(features[0]), 1 - y)
                opt_ae.zero_grad()
                (rec + lam * adv).backward()
                torch.nn.utils.clip_grad_norm_(ae.parameters(), config.clip_grad_norm)
                opt_ae.step()
                return rec.item()

            def fader(precision: str):
                return lambda: float(trainers[precision].train_step(at)["rec_loss"])

            steps = {"baseline": baseline, "fp32": fader("fp32"), "auto": fader("auto")}
            # Same start, same batches: they must compute the same losses.
            losses = {}
            for name, fn in steps.items():
                torch.manual_seed(1)
                losses[name] = [fn() for _ in range(3)]
            diff = {p: max(abs(a - b) for a, b in zip(losses["baseline"], losses[p])) for p in ("fp32", "auto")}
            times = {name: [] for name in steps}
            for _ in range(args.repeats):
                for name, fn in steps.items():
                    for _ in range(2):  # untimed: the first steps after a switch of model rebuild oneDNN's caches
                        fn()
                    started = time.perf_counter()
                    for _ in range(args.steps):
                        fn()
                    times[name].append(time.perf_counter() - started)
            rate = {name: 32 * args.steps / statistics.median(t) for name, t in times.items()}
            base = rate["baseline"]
            print(
                f"{size:>5} {base:>15.1f} {rate['fp32']:>11.1f} {rate['fp32'] / base:>6.2f} {rate['auto']:>11.1f}"
                f" {rate['auto'] / base:>6.2f} {rate['auto'] / rate['fp32']:>9.2f} {diff['fp32']:>15.2e}"
                f" {diff['auto']:>9.2e}"
            )

    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (200, 2000):
            done = subprocess.run(
                [sys.executable, str(ROOT / "benchmarks" / "rss_probe.py"), str(n), str(Path(tmp) / str(n))],
                capture_output=True,
                text=True,
                check=True,
            )
            peaks[n] = int(done.stdout.split()[-1]) / 1024
    print(
        f"peak RSS of a training epoch: {peaks[200]:.0f} MiB over 200 images, {peaks[2000]:.0f} MiB over "
        f"2,000 (x{peaks[2000] / peaks[200]:.3f}; 256 px images, 10x = +338 MiB of pixels)"
    )


if __name__ == "__main__":
    main()

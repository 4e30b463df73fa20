"""Faces per second through encode + decode: the plain eager float32 path vs fader's editing path,
in float32 and in the precision `--precision auto` picks on this machine.

    python benchmarks/inference.py [--img-size 256] [--repeats 5] [--threads N]

Baseline: what a straightforward implementation does, the trained AutoEncoder in eval mode under
torch.no_grad(). Then the Editor `fader edit` runs (BatchNorm folded into the convolutions,
channels-last, under torch.inference_mode()) with `--precision fp32` and `--precision auto`
(bfloat16 autocast on a CPU with AVX-512 BF16 or AMX). All take the same weights and inputs; the
script checks that float32 agrees with the baseline within 1e-4 and prints how far auto's outputs
are from it in 8-bit levels (mean and largest), then faces/s at batch 1 and 16 (median of
--repeats timings, alternating the paths so load on the machine hits all alike), the ratios to
the baseline, and the GFLOP/s achieved beside a large float32 matmul measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def conv_flops(model, x, y) -> float:
    """Multiply-adds x 2 of every convolution in one encode + decode (the bulk of the work)."""
    import torch

    total = 0

    def hook(module, inputs, output):
        nonlocal total
        weight = module.weight
        if isinstance(module, torch.nn.ConvTranspose2d):
            per_input = weight.shape[1] * weight.shape[2] * weight.shape[3]
            total += 2 * inputs[0].numel() * per_input
        else:
            per_output = weight.shape[1] * weight.shape[2] * weight.shape[3]
            total += 2 * output.numel() * per_output

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    ]
    with torch.no_grad():
        model.decode(model.encode(x), y)
    for h in handles:
        h.remove()
    return float(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--img-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from fadercli.devices import pick_precision
    from fadercli.net.editor import Editor
    from fadercli.net.model import AutoEncoder, FaderConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = FaderConfig(img_size=args.img_size, n_layers=min(6, args.img_size.bit_length() - 3))
    baseline = AutoEncoder(config).eval()
    with torch.no_grad():  # trained-looking statistics, so folding has something to fold
        for m in baseline.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    cpu = torch.device("cpu")
    auto = pick_precision("auto", cpu)
    editors = {"fp32": Editor(baseline), "auto": Editor(baseline, precision=auto)}

    def run_baseline(x, y):
        with torch.no_grad():
            return baseline.decode(baseline.encode(x), y)

    def run_editor(name):
        editor = editors[name]
        return lambda x, y: editor.decode(editor.encode(x), y[:, 1::2])  # the editor takes slider values

    paths = {"baseline": run_baseline, "fp32": run_editor("fp32"), "auto": run_editor("auto")}
    rows = []
    for batch in (1, 16):
        x = torch.rand(batch, 3, args.img_size, args.img_size) * 2 - 1
        value = torch.rand(batch, 1)
        y = torch.cat([1 - value, value], 1)
        reference = run_baseline(x, y)
        difference = (reference - paths["fp32"](x, y)).abs().max().item()
        assert difference <= 1e-4, f"outputs differ by {difference}"
        levels = (reference - paths["auto"](x, y)).abs() * 127.5  # [-1, 1] -> 8-bit levels
        times = {name: [] for name in paths}
        reps = max(3, 32 // batch)
        for _ in range(args.repeats):
            for name, fn in paths.items():
                fn(x, y)  # warm
                started = time.perf_counter()
                for _ in range(reps):
                    fn(x, y)
                times[name].append((time.perf_counter() - started) / reps)
        seconds = {name: statistics.median(t) for name, t in times.items()}
        flops = conv_flops(baseline, x, y)
        rows.append((batch, seconds, difference, levels.mean().item(), levels.max().item(), flops))

    n = 2048
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    started = time.perf_counter()
    for _ in range(5):
        a @ b
    matmul = 5 * 2 * n**3 / (time.perf_counter() - started)

    print(f"encode + decode at {args.img_size} px, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"--precision auto here: {auto.describe()}")
    print(
        f"{'batch':>5} {'baseline faces/s':>17} {'fp32 faces/s':>13} {'ratio':>6} {'auto faces/s':>13} {'ratio':>6}"
        f" {'fp32 max diff':>14} {'auto levels mean/max':>21} {'fp32 GFLOP/s':>13}"
    )
    for batch, seconds, diff, mean_levels, max_levels, flops in rows:
        base = seconds["baseline"]
        print(
            f"{batch:>5} {batch / base:>17.1f} {batch / seconds['fp32']:>13.1f} {base / seconds['fp32']:>6.2f}"
            f" {batch / seconds['auto']:>13.1f} {base / seconds['auto']:>6.2f} {diff:>14.1e}"
            f" {mean_levels:>10.2f} / {max_levels:<8.2f} {flops / seconds['fp32'] / 1e9:>13.1f}"
        )
    print(
        f"float32 matmul {n}x{n}: {matmul / 1e9:.1f} GFLOP/s; fp32 at batch 16 reaches "
        f"{rows[-1][5] / rows[-1][1]['fp32'] / matmul:.0%} of it"
    )


if __name__ == "__main__":
    main()

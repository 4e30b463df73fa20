"""Faces per second through encode + decode: the plain eager float32 path vs fader's editing path.

    python benchmarks/inference.py [--img-size 256] [--repeats 5] [--threads N]

Baseline: what a straightforward implementation does, the trained AutoEncoder in eval mode under
torch.no_grad(). Optimised: the module Editor runs (BatchNorm folded into the convolutions, under
torch.inference_mode()). Both take the same weights and inputs; the script checks that their
outputs agree within 1e-4 and prints faces/s at batch 1 and 16 (median of --repeats timings,
alternating the two paths so load on the machine hits both alike), their ratio, and the GFLOP/s
achieved beside a large float32 matmul measured in the same run.
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
    editor = Editor(baseline)

    def run_baseline(x, y):
        with torch.no_grad():
            return baseline.decode(baseline.encode(x), y)

    def run_optimised(x, y):
        return editor.decode(editor.encode(x), y[:, 1::2])  # the editor takes slider values

    rows = []
    for batch in (1, 16):
        x = torch.rand(batch, 3, args.img_size, args.img_size) * 2 - 1
        value = torch.rand(batch, 1)
        y = torch.cat([1 - value, value], 1)
        difference = (run_baseline(x, y) - run_optimised(x, y)).abs().max().item()
        assert difference <= 1e-4, f"outputs differ by {difference}"
        times = {"baseline": [], "optimised": []}
        reps = max(3, 32 // batch)
        for _ in range(args.repeats):
            for name, fn in (("baseline", run_baseline), ("optimised", run_optimised)):
                fn(x, y)  # warm
                started = time.perf_counter()
                for _ in range(reps):
                    fn(x, y)
                times[name].append((time.perf_counter() - started) / reps)
        base, fast = statistics.median(times["baseline"]), statistics.median(times["optimised"])
        rows.append((batch, batch / base, batch / fast, base / fast, difference, conv_flops(baseline, x, y) / fast))

    n = 2048
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    started = time.perf_counter()
    for _ in range(5):
        a @ b
    matmul = 5 * 2 * n**3 / (time.perf_counter() - started)

    print(f"encode + decode at {args.img_size} px, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(
        f"{'batch':>5} {'baseline faces/s':>17} {'optimised faces/s':>18} {'ratio':>6} {'max diff':>9} {'GFLOP/s':>8}"
    )
    for batch, base, fast, ratio, diff, flops in rows:
        print(f"{batch:>5} {base:>17.1f} {fast:>18.1f} {ratio:>6.2f} {diff:>9.1e} {flops / 1e9:>8.1f}")
    print(
        f"float32 matmul {n}x{n}: {matmul / 1e9:.1f} GFLOP/s; optimised batch 16 reaches "
        f"{rows[-1][5] / matmul:.0%} of it"
    )


if __name__ == "__main__":
    main()

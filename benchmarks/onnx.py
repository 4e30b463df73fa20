"""Faces per second editing aligned crops: onnxruntime on the CPU running an exported model against
torch running the same model as `fader edit` does, in float32 and in `--precision auto`.

    python benchmarks/onnx.py [--sizes 64 256] [--batches 1 16] [--repeats 5] [--threads N]

For each image-size preset (the architecture `fader train --img-size N` builds, one attribute,
random weights with trained-looking BatchNorm statistics) the model is saved, exported with
`fader export --format onnx`'s code and loaded by the runner (onnxrun.OnnxFader). Three paths edit
the same toy faces: torch fp32 (net.editor.Editor: analyse, then render), torch with the precision
`--precision auto` picks here (bfloat16 autocast where the CPU computes it natively, else float32
again), and onnxruntime's CPU provider running the two graphs with as many threads as torch uses.
An edit is analyse + render (what `fader edit` costs per face); a slider update is one render (what
a page costs per move once a photo is analysed). Printed: faces/s (median of --repeats, the paths
interleaved so load on the machine hits all alike) and each path's ratio to torch fp32 timed in
the same run, and how far onnxruntime's edited crops are from torch fp32's (in 8-bit levels).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch and onnxruntime threads (0: torch's default)")
    parser.add_argument("--width", type=float, default=1.0, help="scale the preset's feature maps (a quick try: 0.125)")
    args = parser.parse_args()
    # This script's own folder would make `import onnx` (inside the exporter) import this script.
    sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
    import numpy as np
    import torch

    from fadercli.devices import pick_precision
    from fadercli.net.editor import Editor
    from fadercli.net.model import AutoEncoder, FaderConfig
    from fadercli.onnxrun import OnnxFader
    from fadercli.share.onnx_export import export_onnx
    from fadercli.train import toyfaces
    from fadercli.train.config import SIZE_PRESETS
    from fadercli.weights.format import save_model

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    auto = pick_precision("auto", torch.device("cpu"))
    print(f"{threads} threads; --precision auto here: {auto.describe()}; median of {args.repeats}")
    print(
        f"{'size':>4} {'batch':>5} {'what':>14} {'torch fp32':>11} {'torch auto':>11} {'ratio':>6}"
        f" {'onnxruntime':>12} {'ratio':>6} {'levels mean/max':>16}"
    )
    for size in args.sizes:
        preset = SIZE_PRESETS[size]
        torch.manual_seed(0)
        config = FaderConfig(
            (("Smiling", 2),),
            img_size=size,
            init_fm=max(1, round(preset["init_fm"] * args.width)),
            max_fm=max(1, round(preset["max_fm"] * args.width)),
            n_layers=preset["n_layers"],
        )
        model = AutoEncoder(config).eval()
        with torch.no_grad():  # trained-looking statistics, so folding has something to fold
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
        with tempfile.TemporaryDirectory() as folder:
            save_model(Path(folder) / "model.safetensors", model)
            export_onnx(str(Path(folder) / "model.safetensors"))
            runner = OnnxFader.load(folder, threads=threads, batch_size=max(args.batches))
        most = max(args.batches)  # every path runs a batch whole
        editors = {"fp32": Editor(model, batch_size=most), "auto": Editor(model, batch_size=most, precision=auto)}

        for batch in args.batches:
            images = toyfaces.render(toyfaces.sample(batch, seed=3), size).astype(np.float32) / 255
            x = np.ascontiguousarray(images.transpose(0, 3, 1, 2) * 2 - 1)
            xt = torch.from_numpy(x)
            analyses = {name: e.analyse(xt) for name, e in editors.items()}
            analysis = runner.analyse(x)
            target = runner.values_for(analysis[0], {"Smiling": 1.0}, {})

            def torch_edit(name):
                return lambda: editors[name].render(xt, editors[name].analyse(xt), {"Smiling": 1.0})[0]

            def torch_render(name):
                return lambda: editors[name].render(xt, analyses[name], {"Smiling": 1.0})[0]

            paths = {
                "edit": {
                    "fp32": torch_edit("fp32"),
                    "auto": torch_edit("auto"),
                    "onnx": lambda: runner.render(x, runner.analyse(x), target),
                },
                "slider update": {
                    "fp32": torch_render("fp32"),
                    "auto": torch_render("auto"),
                    "onnx": lambda: runner.render(x, analysis, target),
                },
            }
            for what, fns in paths.items():
                levels = np.abs(fns["onnx"]() - fns["fp32"]().numpy()) * 127.5
                times = {name: [] for name in fns}
                reps = max(2, 16 // batch)
                for _ in range(args.repeats):
                    for name, fn in fns.items():
                        fn()  # warm
                        started = time.perf_counter()
                        for _ in range(reps):
                            fn()
                        times[name].append((time.perf_counter() - started) / reps)
                rate = {name: batch / statistics.median(t) for name, t in times.items()}
                print(
                    f"{size:>4} {batch:>5} {what:>14} {rate['fp32']:>11.1f} {rate['auto']:>11.1f}"
                    f" {rate['auto'] / rate['fp32']:>6.2f} {rate['onnx']:>12.1f} {rate['onnx'] / rate['fp32']:>6.2f}"
                    f" {levels.mean():>7.3f} / {levels.max():<7.3f}"
                )


if __name__ == "__main__":
    main()

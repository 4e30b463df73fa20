"""`fader demo`: the whole method on generated toy faces, offline, in a few CPU minutes.

Generates a labelled set of toy faces, trains a Fader Network on it with the same code path as
`fader train`, and writes a slider sweep GIF and a summary of the scores.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from fadercli import toyfaces
from fadercli.evaluate import one_hot, to_tensor
from fadercli.files import atomic_path
from fadercli.grids import save_gif, tile
from fadercli.train import TrainConfig, run_training
from fadercli.weights import load_model

SWEEP = np.linspace(-0.5, 1.5, 9)


def run_demo(out: Path, *, minutes: float, faces: int, img_size: int, seed: int, device_name: str, quiet: bool) -> dict:
    started = time.monotonic()
    out = Path(out)
    data = out / "data"
    if not (data / "labels.csv").is_file():
        toyfaces.write_dataset(data, faces, size=img_size, seed=seed)
    config = TrainConfig(img_size=img_size, max_minutes=minutes, seed=seed, **DEMO_RECIPE)
    data_args = {"data": data, "labels": None, "images": None, "crop": "none", "align": False, "attributes": None}
    run = out / "run"
    scores = run_training(data_args, config, run, device_name=device_name, quiet=quiet, started=started)
    write_sweep(run / "model.safetensors", out / "sweep.gif", seed=seed)
    summary = {
        "seconds": round(time.monotonic() - started, 1),
        "model": str(run / "model.safetensors"),
        "sweep": str(out / "sweep.gif"),
        **scores,
    }
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return summary


# Tuned for a few CPU minutes at 32 px (docs/experiments.md).
DEMO_RECIPE: dict = {}


@torch.no_grad()
def write_sweep(model_path: Path, gif: Path, *, seed: int, n_faces: int = 4) -> None:
    """Fresh toy faces (never seen in training); one row per attribute, the slider moving in every frame."""
    loaded = load_model(model_path, kind="fader")
    ae, attrs = loaded.model, loaded.attributes
    params = toyfaces.sample(n_faces, seed=seed + 99991)
    size = loaded.config.img_size
    x = to_tensor(toyfaces.render(params, size), torch.device("cpu"))
    truth = torch.from_numpy(toyfaces.labels(params)[:, [toyfaces.ATTRIBUTES.index(a) for a in attrs.names]])
    features = ae.encode(x)
    base = one_hot(attrs, truth)
    frames = []
    for value in np.concatenate([SWEEP, SWEEP[-2:0:-1]]):
        rows, captions = [], []
        for i, (a, start) in enumerate(zip(attrs, attrs.offsets())):
            y = base.clone()
            y[:, start : start + 2] = torch.tensor([1 - value, value], dtype=y.dtype)
            images = ae.decode(features, y).clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy()
            rows.append(list(images))
            captions.append([f"{a.name} {value:+.2f}"] + [""] * (n_faces - 1))
        frames.append(tile(rows, captions, scale=max(1, 96 // size)))
    save_gif(frames, gif, fps=6)

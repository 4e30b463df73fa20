"""`fader demo`: the whole method on generated toy faces, offline, in a few CPU minutes.

Generates a labelled set of toy faces, trains a Fader Network on it with the same code path as
`fader train`, and writes a slider sweep GIF and a summary of the scores.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from fadercli.errors import OutputError
from fadercli.files import atomic_path
from fadercli.train import toyfaces
from fadercli.train.config import TrainConfig
from fadercli.train.run import run_training


def run_demo(
    out: Path,
    *,
    minutes: float,
    faces: int,
    img_size: int,
    seed: int,
    device_name: str,
    quiet: bool,
    style: str = "plain",
    precision: str = "auto",
) -> dict:
    started = time.monotonic()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot write the demo into {out}: {e.strerror or e}") from None
    data = out / "data"
    if not (data / "labels.csv").is_file():
        toyfaces.write_dataset(data, faces, size=img_size, seed=seed, style=style)
    config = TrainConfig(img_size=img_size, max_minutes=minutes, seed=seed, precision=precision)  # the size's preset
    data_args = {"data": data, "labels": None, "images": None, "crop": "none", "align": False, "attributes": None}
    run = out / "run"
    scores = run_training(data_args, config, run, device_name=device_name, quiet=quiet, started=started)
    write_sweep(run, out / "sweep.gif", seed=seed, style=style, device_name=device_name, precision=precision)
    summary = {
        "seconds": round(time.monotonic() - started, 1),
        "model": str(run / "model.safetensors"),
        "sweep": str(out / "sweep.gif"),
        **scores,
    }
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return summary


def write_sweep(
    run: Path, gif: Path, *, seed: int, style: str, device_name: str = "auto", precision: str = "auto", n_faces: int = 4
) -> None:
    """Fresh toy faces (never seen in training), every attribute slid from -0.5 to 1.5, back and forth."""
    from fadercli.api import Fader

    fader = Fader.load(str(run), device=device_name, precision=precision, quiet=True)
    params = toyfaces.sample(n_faces, seed=seed + 99991, style=style)
    faces = list(toyfaces.render(params, fader.models[0].size))
    sweep = fader.sweep(faces, fader.attributes, steps=9, value_range=(-0.5, 1.5), align=False, max_size=96)
    sweep.save(gif, fps=6, bounce=True)

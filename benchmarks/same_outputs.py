"""Fingerprints of what fader makes, to show that a refactoring changed nothing a user can see.

    python benchmarks/same_outputs.py OUT.json        # on one commit, then on another
    python benchmarks/same_outputs.py --compare A.json B.json

Trains a small model on toy faces by the command line (seeded, a fixed number of steps), then
records the sha256 of: its weights (tensors only: the metadata holds timings), `fader edit` of the
test photos (several modes and formats), `fader sweep` as a GIF and as a grid, `fader inspect`'s
JSON, `fader demo`'s sweep drawn from the same model, the server's `/api/edit`, an upload and a
render, and a clip edited by `fader edit` (the frames handed to the encoder: libx264's own output
is not repeatable from run to run here, see docs/experiments.md). Everything runs on the CPU with
one thread, so the numbers do not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tests" / "data"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "FADER_OFFLINE": "1"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def fader(*args, cwd: Path) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, "-m", "fadercli", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=ENV
    )
    if out.returncode:
        raise SystemExit(f"fader {' '.join(map(str, args))} failed ({out.returncode}): {out.stderr[-2000:]}")
    return out


def fingerprints(work: Path) -> dict[str, str]:
    from PIL import Image

    sys.path.insert(0, str(ROOT / "tests"))
    from clips import make_clip

    try:
        from fadercli.train import toyfaces
    except ImportError:  # before the train subpackage
        from fadercli import toyfaces

    found: dict[str, str] = {}
    data = toyfaces.write_dataset(work / "toy", 400, size=32, seed=3, attributes=("Eyeglasses", "Smiling"))
    fader("train", data, "--img-size", 32, "--max-steps", 60, "--clf-steps", 40, "--out", work / "run", "-q", cwd=work)
    from safetensors.numpy import load_file

    tensors = load_file(str(work / "run" / "model.safetensors"))
    found["weights"] = sha(b"".join(name.encode() + tensors[name].tobytes() for name in sorted(tensors)))
    photos = work / "photos"
    photos.mkdir()
    portrait = Image.open(PHOTOS / "grace_hopper.jpg")
    portrait.save(photos / "hopper.png")
    portrait.convert("L").save(photos / "grey.png")
    portrait.convert("RGBA").save(photos / "alpha.png")
    portrait.save(photos / "hopper.jpg", quality=90)
    Image.open(PHOTOS / "chelsea.jpg").save(photos / "cat.png")
    for values in (["--set", "Eyeglasses=1.5"], ["--shift", "Smiling=0.7", "--set", "Eyeglasses=0"]):
        out = work / ("edits_" + values[1].split("=")[0])
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "fadercli",
                "edit",
                photos,
                "--model",
                work / "run",
                *values,
                "--out-dir",
                out,
                "--json",
                "-q",
            ],
            capture_output=True,
            text=True,
            cwd=work,
            env=ENV,
        )
        for path in sorted(out.iterdir()):
            found[f"edit {values[1]} {path.name}"] = sha(path.read_bytes())
        found[f"edit {values[1]} faces"] = sha(
            json.dumps(
                [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in result.stdout.splitlines()]
            )
            .replace(str(work), "WORK")
            .encode()
        )
    for output in ("sweep.gif", "grid.png"):
        fader(
            "sweep",
            photos / "hopper.png",
            "--attr",
            "Eyeglasses",
            "--attr",
            "Smiling",
            "--steps",
            5,
            "-o",
            work / output,
            "--model",
            work / "run",
            "-q",
            cwd=work,
        )
        found[f"sweep {output}"] = sha((work / output).read_bytes())
    inspected = fader("inspect", photos / "hopper.png", "--model", work / "run", "--json", "-q", cwd=work)
    found["inspect"] = sha(inspected.stdout.replace(str(work), "WORK").encode())
    from fadercli.demo import write_sweep

    write_sweep(work / "run", work / "demo.gif", seed=0, style="plain")
    found["demo sweep"] = sha((work / "demo.gif").read_bytes())
    found |= served(work, photos / "hopper.png")
    clip = make_clip(work / "clip.mp4", n=8)
    found["video frames"] = encoded_frames(work, clip)
    return found


def served(work: Path, photo: Path) -> dict[str, str]:
    import torch
    from fastapi.testclient import TestClient

    from fadercli.serve.app import Settings, create_app
    from fadercli.serve.models import ModelPool

    torch.set_num_threads(1)
    pool = ModelPool([str(work / "run")], device=torch.device("cpu"), threshold=None)
    with TestClient(create_app(pool, Settings(allowed_hosts=("testserver",)))) as client:
        edit = client.post("/api/edit", files={"file": ("p.png", photo.read_bytes())}, data={"set": "Eyeglasses=1.5"})
        record = client.post("/api/photos", files={"file": ("p.png", photo.read_bytes())}).json()
        render = client.post(
            f"/api/photos/{record['id']}/render", json={"faces": {"0": {"Smiling": 0.9}}, "format": "png"}
        )
        preview = client.post(
            f"/api/photos/{record['id']}/render", json={"faces": {"0": {"Eyeglasses": 1.2}}, "max_size": 200}
        )
    estimates = [{k: v for k, v in f.items()} for f in record["faces"]]
    return {
        "serve edit": sha(edit.content),
        "serve estimates": sha(json.dumps(estimates).encode()),
        "serve render": sha(render.content),
        "serve preview": sha(preview.content),
    }


def encoded_frames(work: Path, clip: Path) -> str:
    """The planes and timestamps every frame hands to the encoder, hashed."""
    import torch

    torch.set_num_threads(1)
    try:
        from fadercli.media.encoder import Writer
    except ImportError:  # before the layering
        from fadercli.video.clips import Writer
    from fadercli.api import Fader

    digest = hashlib.sha256()
    write = Writer.write

    def recording(self, yuv, pts, duration=0):
        digest.update(b"".join(p.tobytes() for p in yuv) + str((pts, duration)).encode())
        return write(self, yuv, pts, duration)

    Writer.write = recording
    Fader.load(str(work / "run"), quiet=True, device="cpu").edit_video(
        clip, work / "clip_fader.mp4", {"Eyeglasses": 1.5}
    )
    return digest.hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--compare", nargs=2, type=Path)
    args = parser.parse_args()
    if args.compare:
        a, b = (json.loads(p.read_text()) for p in args.compare)
        differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        for key in sorted(a.keys() | b.keys()):
            print(f"{'same ' if key not in differ else 'DIFFERENT'}  {key}")
        print(f"{len(a.keys() | b.keys()) - len(differ)} of {len(a.keys() | b.keys())} outputs bit-identical")
        raise SystemExit(1 if differ else 0)
    with tempfile.TemporaryDirectory() as folder:
        found = fingerprints(Path(folder))
    args.out.write_text(json.dumps(found, indent=1, sort_keys=True))
    print(f"{len(found)} fingerprints written to {args.out}")


if __name__ == "__main__":
    main()

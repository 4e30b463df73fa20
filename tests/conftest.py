"""Shared test fixtures. Test inputs come from tests/data (see its SOURCES.md) or are made here."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
# A child process's own peak RSS in MB, as an expression for scripts run with `python -c` (VmHWM:
# ru_maxrss would carry the parent's peak over fork + exec, and pytest's is large).
PEAK_MB = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) // 1024"
DATA = ROOT / "tests" / "data"
YUNET = DATA / "face_detection_yunet_2026may.onnx"


def paste_weights(alignment, photo):
    """The paste-back weight of every pixel of a photo (zero where a paste leaves pixels alone)."""
    import numpy as np

    from fadercli.faces import photo_mask

    weights, (x0, y0, x1, y1) = photo_mask(alignment, photo.width, photo.height)
    full = np.zeros((photo.height, photo.width), np.float32)
    full[y0:y1, x0:x1] = weights
    return full


def box_masks(box, shape, reach: float = 1.2):
    """For a face box (x, y, w, h) in a picture of `shape`: the box's pixels, and those further than
    `reach` face sizes from its centre (far from anything an edit of the face may touch)."""
    import numpy as np

    x, y, w, h = box
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    inside = (xx >= x) & (xx < x + w) & (yy >= y) & (yy < y + h)
    return inside, np.maximum(np.abs(xx - (x + w / 2)), np.abs(yy - (y + h / 2))) > reach * max(w, h)


@pytest.fixture(scope="session", autouse=True)
def _local_face_detector():
    """Tests use the repository's copy of YuNet, never a download (subprocesses inherit it too)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FADER_DETECTOR_MODEL", str(YUNET))
        yield


@pytest.fixture
def run_cli():
    """Invoke `fader ARGS...` in-process; the result has exit_code, stdout and stderr apart."""
    from fadercli.cli import app

    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return run


@pytest.fixture
def release(monkeypatch):
    """The stand-ins for the authors' classes, importable as `src.model` while the test runs."""
    import importlib
    import sys

    monkeypatch.syspath_prepend(str(ROOT / "tests" / "fake_release"))
    module = importlib.import_module("src.model")
    yield module
    for name in ("src.model", "src"):
        sys.modules.pop(name, None)


@pytest.fixture
def server():
    """A local HTTP server (tests/file_server.py); tests put files in server.plan.files."""
    from file_server import FileServer

    s = FileServer()
    yield s
    s.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty fader home; downloads patient enough for tests but quick to give up and retry."""
    path = tmp_path / "home"
    monkeypatch.setenv("FADER_HOME", str(path))
    monkeypatch.setenv("FADER_DOWNLOAD_TIMEOUT", "5")
    monkeypatch.setenv("FADER_DOWNLOAD_RETRIES", "2")
    monkeypatch.setenv("FADER_DOWNLOAD_BACKOFF", "0.01")
    for name in ("FADER_OFFLINE", "FADER_REGISTRY"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture
def register(home):
    """Write registry entries {name: {setting: value}} to the home's registry.toml."""
    import json

    def write(entries: dict[str, dict]) -> Path:
        lines = []
        for name, settings in entries.items():
            lines.append(f"[models.{name}]")
            # JSON strings, numbers and arrays of them are valid TOML values.
            lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
        path = home / "registry.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


# A tiny model trains in well under a second: what the edit tests need is the real pipeline, not good edits.
TINY_TRAINING = dict(init_fm=8, max_fm=32, n_layers=3, hid_dim=32, batch_size=8, clf_steps=5, previews=0, max_steps=6)


@pytest.fixture(scope="session")
def toy_runs(tmp_path_factory):
    """Training run folders of tiny models trained on toy faces: "both" (Eyeglasses and Smiling, 32 px),
    "eyeglasses" (32 px) and "smiling" (64 px), each with model.safetensors and classifier.safetensors."""
    import torch

    from fadercli.train import toyfaces
    from fadercli.train.config import TrainConfig
    from fadercli.train.data import prepare
    from fadercli.train.run import train

    root = tmp_path_factory.mktemp("toy_runs")
    runs = {}
    for name, size, attributes in (
        ("both", 32, ("Eyeglasses", "Smiling")),
        ("eyeglasses", 32, ("Eyeglasses",)),
        ("smiling", 64, ("Smiling",)),
    ):
        data = root / f"{name}_data"
        toyfaces.write_dataset(data, 40, size=size, seed=5, attributes=attributes)
        dataset = prepare(data, img_size=size, cache_root=root / "cache", val_fraction=0.2)
        config = TrainConfig(img_size=size, **TINY_TRAINING)
        train(dataset, config, root / name, device=torch.device("cpu"), show_progress=False, log=lambda m: None)
        runs[name] = root / name
    return runs

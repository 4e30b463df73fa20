"""Without the optional extras (`fadercli[serve]`, `fadercli[video]`, `fadercli[onnx]`, ...): the commands that need one say
in one line which to install (exit 2); --help still lists them; photos, sweeps and training work.
The extras are hidden from a child process by an import hook (the suite itself has them installed)."""

import subprocess
import sys

import numpy as np
from conftest import DATA, TINY_TRAINING
from PIL import Image

ASTRONAUT = DATA / "astronaut.png"
# A child fader whose imports of the extras' packages fail as if they were not installed.
WITHOUT_EXTRAS = """
import sys
from importlib.abc import Loader, MetaPathFinder
from importlib.util import spec_from_loader

class Absent(MetaPathFinder, Loader):
    # Found, so that a probe of what is installed (torch's own, for onnx, when it starts its compiler)
    # goes on; never imported.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"av", "fastapi", "uvicorn", "multipart", "starlette", "pydantic", "huggingface_hub", "matplotlib", "tensorboard", "onnx", "onnxruntime"}:
            return spec_from_loader(name, self)

    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r}", name=spec.name)

    def exec_module(self, module):
        pass

sys.meta_path.insert(0, Absent())
sys.argv[0] = "fader"
from fadercli.cli import main
main()
"""


def bare_fader(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def assert_names_extra(result: subprocess.CompletedProcess, extra: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fader: error: "), result.stderr
    assert f"pip install 'fadercli[{extra}]'" in lines[0]


def test_serve_and_video_name_their_extra(tmp_path, toy_runs):
    assert_names_extra(bare_fader("serve", "--model", toy_runs["both"], "--port", "0"), "serve")
    clip = tmp_path / "talk.mp4"
    clip.write_bytes(b"\x00" * 64)  # refused before it is read
    assert_names_extra(bare_fader("edit", clip, "--model", toy_runs["both"], "--set", "Smiling=1"), "video")
    assert_names_extra(
        bare_fader("sweep", ASTRONAUT, "--model", toy_runs["both"], "--attr", "Smiling", "-o", tmp_path / "s.mp4"),
        "video",
    )
    assert not (tmp_path / "s.mp4").exists() and not (tmp_path / "talk_fader.mp4").exists()


def test_hub_plot_and_tensorboard_name_their_extra(tmp_path, toy_runs):
    assert_names_extra(bare_fader("info", "hf://alice/smiling"), "hub")
    assert_names_extra(bare_fader("push", toy_runs["both"], "alice/smiling"), "hub")
    assert_names_extra(bare_fader("plot", toy_runs["both"], "-o", tmp_path / "c.png"), "plot")
    from fadercli.train import toyfaces

    toyfaces.write_dataset(tmp_path / "toy", 8, size=32, seed=1, attributes=("Smiling",))
    assert_names_extra(
        bare_fader("train", tmp_path / "toy", "--img-size", "32", "--log", "tensorboard", "--out", tmp_path / "run"),
        "tensorboard",
    )
    assert not (tmp_path / "c.png").exists() and not (tmp_path / "run" / "model.safetensors").exists()


def test_onnx_export_and_engine_name_their_extra(tmp_path, toy_runs):
    assert_names_extra(bare_fader("export", toy_runs["both"], tmp_path / "onnx", "--format", "onnx"), "onnx")
    edit = ["edit", ASTRONAUT, "--set", "Smiling=1", "--engine", "onnx", "--model", tmp_path, "-o", tmp_path / "e.png"]
    assert_names_extra(bare_fader(*edit), "onnx")
    assert not (tmp_path / "onnx").exists() and not (tmp_path / "e.png").exists()


def test_help_lists_every_command_without_the_extras():
    result = bare_fader("--help")
    assert result.returncode == 0, result.stderr
    for command in ("edit", "sweep", "serve", "train", "inspect", "plot", "push", "export"):
        assert command in result.stdout


def test_photos_sweeps_and_training_need_no_extra(tmp_path, toy_runs):
    run = bare_fader
    edited = run("edit", ASTRONAUT, "--model", toy_runs["both"], "--set", "Smiling=1", "-o", tmp_path / "e.png", "-q")
    assert edited.returncode == 0, edited.stderr
    before, after = np.asarray(Image.open(ASTRONAUT)), np.asarray(Image.open(tmp_path / "e.png"))
    assert before.shape == after.shape and (before != after).any()
    swept = run(
        "sweep",
        ASTRONAUT,
        "--model",
        toy_runs["both"],
        "--attr",
        "Smiling",
        "--steps",
        "3",
        "-o",
        tmp_path / "s.gif",
        "-q",
    )
    assert swept.returncode == 0, swept.stderr
    assert Image.open(tmp_path / "s.gif").n_frames == 3
    from fadercli.train import toyfaces

    toyfaces.write_dataset(tmp_path / "toy", 24, size=32, seed=1, attributes=("Smiling",))
    knobs = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_TRAINING.items() if k != "previews"]
    trained = run("train", tmp_path / "toy", "--img-size", "32", *knobs, "--out", tmp_path / "run", "-q")
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "run" / "model.safetensors").stat().st_size > 0

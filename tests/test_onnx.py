"""A model exported to ONNX (`fader export MODEL --format onnx`) and run without PyTorch (onnxrun.py,
`fader edit --engine onnx`): the graphs give the torch model's outputs at every image-size preset, the
runner's edit of the test portrait is `fader edit`'s in a process where importing torch fails,
files it cannot use are one line, and `fader push` uploads the export with a card saying how to run it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, YUNET, box_masks
from PIL import Image
from torch import nn

from fadercli.net.editor import Editor
from fadercli.net.model import AutoEncoder, FaderConfig
from fadercli.train import toyfaces
from fadercli.train.config import SIZE_PRESETS
from fadercli.weights.format import save_model

onnxruntime = pytest.importorskip("onnxruntime")

ASTRONAUT = DATA / "astronaut.png"
# A child process in which torch (and every package the runner must not need) cannot be imported.
WITHOUT_TORCH = """
import sys
from importlib.abc import MetaPathFinder

class Absent(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "safetensors", "onnx", "huggingface_hub", "av", "fastapi", "matplotlib"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Absent())
sys.argv[0] = "fader"
from fadercli.cli import main
main()
"""


def fader(*args, torch_importable: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    command = ["-m", "fadercli"] if torch_importable else ["-c", WITHOUT_TORCH]
    return subprocess.run(
        [sys.executable, *command, *map(str, args)], capture_output=True, text=True, timeout=300, env=env
    )


def one_line(result: subprocess.CompletedProcess, code: int, words: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fader: error: ") and words in lines[0], result.stderr


def toy_model(size: int, attributes, n_skip: int = 0) -> AutoEncoder:
    """A model of the preset's depth for `size`, very narrow, with BatchNorm statistics that are not the
    identity (folding them into the convolutions must be exported too)."""
    torch.manual_seed(size)
    config = FaderConfig(
        attributes, img_size=size, init_fm=4, max_fm=16, n_layers=SIZE_PRESETS[size]["n_layers"], n_skip=n_skip
    )
    model = AutoEncoder(config).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
    return model


def toy_crops(size: int, n: int = 3) -> np.ndarray:
    """Toy faces as a model takes them: (n, 3, size, size) float32 in [-1, 1]."""
    images = toyfaces.render(toyfaces.sample(n, seed=7), size).astype(np.float32) / 255
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2) * 2 - 1)


@pytest.mark.parametrize(
    "size, attributes, n_skip",
    [
        (32, (("Smiling", 2),), 0),
        (64, (("Eyeglasses", 2), ("Hair", 3), ("Smiling", 2)), 1),  # several, one categorical, skips
        (128, (("Smiling", 2),), 0),
        (256, (("Eyeglasses", 2), ("Male", 2)), 0),
    ],
)
def test_the_exported_graphs_give_the_torch_models_outputs(tmp_path, size, attributes, n_skip):
    from fadercli.onnxrun import OnnxFader
    from fadercli.share.onnx_export import export_onnx

    model = toy_model(size, attributes, n_skip)
    save_model(tmp_path / "model.safetensors", model)
    written = export_onnx(str(tmp_path / "model.safetensors"))
    assert [p.name for p in written] == ["model.analyse.onnx", "model.render.onnx", "model.onnx.json"]
    runner = OnnxFader.load(tmp_path)
    x = toy_crops(size)
    estimate, recon, features = runner.analyse(x)
    editor = Editor(model)  # what fader edit runs, at float32
    want = editor.analyse(torch.from_numpy(x))
    assert np.abs(estimate - want[1].numpy()).max() < 1e-3
    assert np.abs(recon - want[2].numpy()).max() < 1e-3
    assert len(features) == n_skip + 1
    for got, expected in zip(features, want[0]):
        assert np.abs(got - expected.float().numpy()).max() < 1e-3
    # Every attribute moved (a categorical one to another index), and the second face at its own values.
    target = np.where(estimate > 0.5, estimate - 1, estimate + 1).astype(np.float32)
    target[1] = estimate[1]
    edited = runner.render(x, (estimate, recon, features), target)
    decoded = editor.decode(want[0], torch.from_numpy(target))
    from fadercli.net.editor import finish

    expected = finish(torch.from_numpy(x), want[2], decoded, want[1], torch.from_numpy(target)).numpy()
    assert np.abs(edited - expected).max() < 1e-3
    assert np.array_equal(edited[1], x[1])  # its own values: the input itself, exactly
    assert np.abs(edited[0] - x[0]).max() > 0.05  # the others edited (so the comparison could fail)
    contract = json.loads((tmp_path / "model.onnx.json").read_text())
    assert [a["name"] for a in contract["attributes"]] == [name for name, _ in attributes]
    assert [a["categories"] for a in contract["attributes"]] == [n for _, n in attributes]
    assert contract["image"] == {
        "size": size,
        "layout": "NCHW",
        "channels": "RGB",
        "range": [-1.0, 1.0],
        "dtype": "float32",
    }
    from fadercli.faces import template

    assert np.allclose(contract["crop"]["template"], template(size), atol=1e-5)


def test_the_runner_edits_the_portrait_as_fader_edit_does_without_torch(toy_runs, tmp_path):
    run = toy_runs["smiling"]
    exported = fader("export", run, tmp_path / "onnx", "--format", "onnx")
    assert exported.returncode == 0, exported.stderr
    assert not list(run.glob("*.onnx"))  # the run itself is left as it was
    edit = ["edit", ASTRONAUT, "--set", "Smiling=3", "--json", "-q"]
    ours = fader(*edit, "--model", run, "--precision", "fp32", "-o", tmp_path / "torch.png")
    assert ours.returncode == 0, ours.stderr
    # YuNet from the cache, as a user's first edit leaves it (the way there imports no torch either).
    cached = tmp_path / "home" / "models" / "yunet" / "yunet.onnx"
    cached.parent.mkdir(parents=True)
    shutil.copy(YUNET, cached)
    env = {k: v for k, v in os.environ.items() if k != "FADER_DETECTOR_MODEL"}
    env |= {"FADER_HOME": str(tmp_path / "home"), "FADER_OFFLINE": "1"}
    theirs = fader(
        *edit,
        "--engine",
        "onnx",
        "--model",
        tmp_path / "onnx",
        "-o",
        tmp_path / "onnx.png",
        torch_importable=False,
        env=env,
    )
    assert theirs.returncode == 0, theirs.stderr
    a, b = json.loads(ours.stdout), json.loads(theirs.stdout)
    assert b["models"] == [str(tmp_path / "onnx" / "model.analyse.onnx")]
    assert a["values"] == b["values"] and a["faces"][0]["box"] == b["faces"][0]["box"]
    assert a["faces"][0]["estimated"]["Smiling"] == pytest.approx(b["faces"][0]["estimated"]["Smiling"], abs=1e-3)
    before = np.asarray(Image.open(ASTRONAUT).convert("RGB"), dtype=np.float64)
    torch_edit = np.asarray(Image.open(tmp_path / "torch.png"), dtype=np.float64)
    onnx_edit = np.asarray(Image.open(tmp_path / "onnx.png"), dtype=np.float64)
    inside, far = box_masks(a["faces"][0]["box"], before.shape)
    assert np.abs(torch_edit - before)[inside].mean() > 4  # the edit shows...
    assert np.abs(onnx_edit - torch_edit)[inside].mean() <= 2  # ...and the runner draws it as fader edit does
    assert np.array_equal(onnx_edit[far], before[far])  # far from the face, every pixel as it was


def test_files_the_runner_cannot_use_are_one_line(run_cli, toy_runs, tmp_path):
    assert run_cli("export", toy_runs["eyeglasses"], tmp_path / "good", "--format", "onnx").exit_code == 0
    graph = (tmp_path / "good" / "model.analyse.onnx").read_bytes()
    edit = ["edit", ASTRONAUT, "--set", "Eyeglasses=1", "--engine", "onnx", "-o", tmp_path / "out.png"]
    for keep in (0.1, 0.5, 0.9, 0.999):
        cut = tmp_path / f"cut{keep}.analyse.onnx"
        cut.write_bytes(graph[: int(len(graph) * keep)])
        result = run_cli(*edit, "--model", cut)
        assert result.exit_code == 5 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"fader: error: {cut}: ")
    foreign = DATA / "face_detection_yunet_2026may.onnx"  # a valid ONNX model, not one fader wrote
    one_line(fader(*edit, "--model", foreign, torch_importable=False), 5, "not one `fader export` wrote")
    mixed = tmp_path / "mixed"  # a render graph from another model beside this analyse graph
    assert run_cli("export", toy_runs["both"], mixed, "--format", "onnx").exit_code == 0
    shutil.copy(tmp_path / "good" / "model.analyse.onnx", mixed / "model.analyse.onnx")
    result = run_cli(*edit, "--model", mixed)
    assert result.exit_code == 5 and "exported from another model" in result.stderr
    result = run_cli(*edit, "--model", tmp_path)
    assert result.exit_code == 5 and "4 exported models: name one" in result.stderr
    local = run_cli("edit", ASTRONAUT, "--set", "Eyeglasses=1", "--model", tmp_path / "good" / "model.analyse.onnx")
    assert local.exit_code == 5 and "only --engine onnx runs" in local.stderr  # the torch engine says where to go
    assert not (tmp_path / "out.png").exists()


def test_export_refuses_what_it_cannot_do_in_one_line(run_cli, toy_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(toy_runs["both"], run)
    assert run_cli("export", run, "--format", "onnx").exit_code == 0  # beside the weights, by default
    assert (run / "model.analyse.onnx").is_file() and (run / "model.onnx.json").is_file()
    for args, code, words in (
        ((run, "--format", "onnx"), 7, "exists (use --force to overwrite)"),
        (("hf://alice/toy", "--format", "onnx"), 2, "not a local model"),
        ((run, tmp_path / "x", "--format", "onnx", "--repo", "a/b"), 2, "--format hub"),
        ((run,), 2, "give the folder to write"),
    ):
        result = run_cli("export", *args)
        assert result.exit_code == code and words in result.stderr and result.stderr.count("\n") == 1, args
    assert run_cli("export", run, "--format", "onnx", "--force").exit_code == 0


def test_push_uploads_the_onnx_export_and_the_card_says_how_to_run_it(run_cli, toy_runs, tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    uploads = []

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        uploads.append({p.name: p.read_bytes() for p in sorted(Path(folder_path).iterdir())})
        return "https://huggingface.co/commit"

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: None)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    run = tmp_path / "run"
    shutil.copytree(toy_runs["both"], run)
    assert run_cli("export", run, "--format", "onnx").exit_code == 0
    pushed = run_cli("push", run, "alice/toy")
    assert pushed.exit_code == 0, pushed.stderr
    [files] = uploads
    for name in ("model.analyse.onnx", "model.render.onnx", "model.onnx.json"):
        assert files[name] == (run / name).read_bytes()
    card = files["README.md"].decode()
    assert "fader edit photo.jpg --engine onnx --model model.analyse.onnx --set Eyeglasses=1" in card
    assert "pip install --no-deps fadercli" in card
    # Weights trained on after the export: the stale graphs are refused, not uploaded.
    shutil.copy(toy_runs["eyeglasses"] / "model.safetensors", run / "model.safetensors")
    stale = run_cli("push", run, "alice/toy")
    assert stale.exit_code == 5 and "made from other weights" in stale.stderr and len(uploads) == 1
    (run / "model.render.onnx").unlink()
    incomplete = run_cli("export", run, tmp_path / "hub")
    assert incomplete.exit_code == 5 and "model.render.onnx is missing" in incomplete.stderr


def test_the_onnx_engine_refuses_what_it_does_not_do(run_cli, tmp_path):
    clip = tmp_path / "talk.mp4"
    clip.write_bytes(b"\x00" * 64)  # refused before it is read
    edit = ["edit", "--set", "Smiling=1", "--engine", "onnx"]
    for args, code, words in (
        ((ASTRONAUT,), 2, "needs one --model"),
        ((ASTRONAUT, "--model", tmp_path, "--model", tmp_path), 2, "needs one --model"),
        ((ASTRONAUT, "--model", tmp_path, "--precision", "bf16"), 2, "drop --precision"),
        ((clip, "--model", tmp_path), 2, "edits photos"),
        ((ASTRONAUT, "--model", tmp_path, "--device", "mps"), 8, "auto, cpu, cuda or cuda:N"),
    ):
        result = run_cli(*edit, *args, "-o", tmp_path / "out.png")
        assert result.exit_code == code and words in result.stderr and result.stderr.count("\n") == 1, args
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():  # asked for, never a fallback
        result = run_cli(*edit, ASTRONAUT, "--model", tmp_path, "--device", "cuda", "-o", tmp_path / "out.png")
        assert result.exit_code == 8 and "no CUDA provider" in result.stderr
    assert not (tmp_path / "out.png").exists()

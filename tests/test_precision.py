"""--precision: auto picks bfloat16 where the hardware computes it natively (detection replaced both
ways here, so every branch runs on any machine), training and editing run in bf16 on the CPU, and
what cannot be done is one line."""

import json

import numpy as np
import pytest
import torch
from conftest import DATA, TINY_TRAINING, paste_weights
from PIL import Image

from fadercli import devices
from fadercli.errors import DeviceError, UsageError
from fadercli.faces import alignment_for, find_faces
from fadercli.media.images import read_image

CPU = torch.device("cpu")
ASTRONAUT = DATA / "astronaut.png"


@pytest.fixture
def cpu_has(monkeypatch):
    """Declare the 16-bit arithmetic this 'CPU' has natively."""

    def have(bf16: str | None = None, fp16: str | None = None) -> None:
        monkeypatch.setattr(devices, "cpu_native_16bit", lambda: {"bf16": bf16, "fp16": fp16})

    return have


def test_auto_takes_bfloat16_on_a_cpu_that_has_it(cpu_has):
    cpu_has(bf16="AVX-512 BF16")
    picked = devices.pick_precision("auto", CPU)
    assert (picked.name, picked.dtype, picked.needs_scaler) == ("bf16", torch.bfloat16, False)
    assert "AVX-512 BF16" in picked.describe()


def test_auto_stays_float32_on_a_cpu_without_it(cpu_has):
    cpu_has(bf16=None, fp16="AMX-FP16")  # float16 alone is never auto's choice on a CPU
    picked = devices.pick_precision("auto", CPU)
    assert (picked.name, picked.dtype, picked.channels_last) == ("fp32", None, False)
    with picked.autocast():
        assert torch.nn.Linear(4, 4)(torch.ones(1, 4)).dtype == torch.float32


@pytest.mark.parametrize(("bf16", "picked", "scaler"), [(True, "bf16", False), (False, "fp16", True)])
def test_auto_on_cuda_prefers_bfloat16_then_float16_with_a_scaler(monkeypatch, bf16, picked, scaler):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    precision = devices.pick_precision("auto", torch.device("cuda"))
    assert (precision.name, precision.needs_scaler, precision.channels_last) == (picked, scaler, True)


def test_auto_is_float32_on_an_apple_gpu():
    assert devices.pick_precision("auto", torch.device("mps")).name == "fp32"


def test_explicit_choices_and_refusals(cpu_has):
    cpu_has(bf16=None, fp16=None)
    assert devices.pick_precision("fp32", CPU).dtype is None
    assert devices.pick_precision("bf16", CPU).dtype == torch.bfloat16  # emulated, with a warning: it works
    with pytest.raises(DeviceError, match="no native float16"):
        devices.pick_precision("fp16", CPU)
    cpu_has(fp16="AMX-FP16")
    assert devices.pick_precision("fp16", CPU).needs_scaler
    with pytest.raises(UsageError, match="unknown precision 'fp8'"):
        devices.pick_precision("fp8", CPU)


def test_the_detection_reads_the_cpu():
    """Whatever this machine is, the answer names an instruction set or nothing, never a vendor."""
    found = devices.cpu_native_16bit()
    assert set(found) == {"bf16", "fp16"}
    assert found["bf16"] in (None, "AMX", "AVX-512 BF16") and found["fp16"] in (None, "AMX-FP16")


# ---------------------------------------------------------------- training


def test_a_bfloat16_training_run_on_the_cpu(run_cli, tmp_path):
    from fadercli.train import toyfaces

    data = toyfaces.write_dataset(tmp_path / "data", 40, size=32, seed=3, attributes=("Eyeglasses", "Smiling"))
    knobs = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_TRAINING.items() if k != "previews"]
    out = tmp_path / "run"
    result = run_cli("train", data, "--img-size", "32", "--no-align", "--precision", "bf16", "--out", out, *knobs)
    assert result.exit_code == 0, result.stderr
    assert "precision: bf16 autocast" in result.stdout  # the summary says how it was trained
    assert json.loads((out / "run.json").read_text())["precision"].startswith("bf16 autocast")
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == TINY_TRAINING["max_steps"]
    assert all(t.dtype == torch.float32 for t in state["ae"].values() if t.is_floating_point())  # master weights
    from fadercli.weights.format import load_model

    loaded = load_model(out / "model.safetensors")
    assert loaded.training["precision"] == "bf16"


def test_a_bfloat16_step_runs_in_bfloat16_and_learns(tmp_path):
    """The autoencoder's convolutions see bfloat16, its weights stay float32 and move, the losses are finite."""
    from fadercli.train import toyfaces
    from fadercli.train.config import TrainConfig
    from fadercli.train.data import prepare
    from fadercli.train.loop import Distributed, Trainer

    data = toyfaces.write_dataset(tmp_path / "data", 24, size=32, seed=4, attributes=("Smiling",))
    dataset = prepare(data, img_size=32, cache_root=tmp_path / "cache", val_fraction=0.2)
    config = TrainConfig(img_size=32, precision="bf16", **TINY_TRAINING).resolved()
    trainer = Trainer(dataset, config, tmp_path / "run", CPU, Distributed(), lambda m: None)
    seen = []
    trainer.ae.enc_layers[1].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    before = [p.detach().clone() for p in trainer.ae.parameters()]
    losses = trainer.train_step(0.5)
    assert seen == [torch.bfloat16]
    assert all(np.isfinite(float(losses[k])) for k in ("rec_loss", "dis_loss", "adv_loss"))
    assert all(p.dtype == torch.float32 for p in trainer.ae.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.ae.parameters()))


# ---------------------------------------------------------------- editing


def test_a_bfloat16_edit_is_within_two_levels_of_float32(run_cli, toy_runs, tmp_path):
    outputs = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.png"
        result = run_cli(
            "edit", ASTRONAUT, "-m", toy_runs["smiling"], "--set", "Smiling=1", "--precision", precision, "-o", out
        )
        assert result.exit_code == 0, result.stderr
        assert f"precision: {'float32' if precision == 'fp32' else 'bf16 autocast'}" in result.stderr
        outputs[precision] = np.asarray(Image.open(out)).astype(int)
    photo = read_image(ASTRONAUT)
    [face] = find_faces(photo)
    inside = paste_weights(alignment_for(face, 64), photo) > 0
    difference = np.abs(outputs["bf16"] - outputs["fp32"])
    assert difference[inside].mean() <= 2.0
    assert difference[inside].max() > 0  # the edit did run in bfloat16
    assert np.array_equal(outputs["bf16"][~inside], outputs["fp32"][~inside])


def test_the_python_api_takes_a_precision(toy_runs):
    from fadercli.api import Fader

    fader = Fader.load(str(toy_runs["smiling"]), device="cpu", precision="bf16")
    assert fader.precision.dtype == torch.bfloat16
    assert fader.models[0].editor.precision is fader.precision
    with pytest.raises(UsageError, match="unknown precision"):
        Fader.load(str(toy_runs["smiling"]), device="cpu", precision="half")


@pytest.mark.parametrize("command", ["edit", "sweep", "train"])
def test_an_unknown_precision_is_a_usage_error_in_one_line(run_cli, toy_runs, tmp_path, command):
    args = {
        "edit": ["edit", ASTRONAUT, "-m", toy_runs["smiling"], "--set", "Smiling=1"],
        "sweep": ["sweep", ASTRONAUT, "-m", toy_runs["smiling"], "--attr", "Smiling", "-o", tmp_path / "s.gif"],
        "train": ["train", tmp_path],
    }[command]
    result = run_cli(*args, "--precision", "fp8")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("fader: error: ") and "fp8" in line and "--precision" in line


def test_float16_on_a_cpu_without_it_is_refused_in_one_line(run_cli, toy_runs, tmp_path, cpu_has):
    cpu_has(bf16="AVX-512 BF16", fp16=None)
    out = tmp_path / "out.png"
    result = run_cli(
        "edit", ASTRONAUT, "-m", toy_runs["smiling"], "--set", "Smiling=1", "--precision", "fp16", "-o", out
    )
    assert result.exit_code == 8
    assert result.stderr.strip().splitlines() == [
        "fader: error: --precision fp16: this CPU has no native float16 (AMX-FP16); use bf16 or fp32"
    ]
    assert not out.exists()

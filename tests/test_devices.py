"""--device: auto picks CUDA, then an Apple GPU, then the CPU; asking for an absent device is an error.

The availability checks are replaced, so every branch runs on a CPU-only machine."""

import pytest
import torch
from conftest import DATA

from fadercli import devices
from fadercli.errors import DeviceError


@pytest.fixture
def machine(monkeypatch):
    """Declare which accelerators this 'machine' has."""

    def have(cuda: int = 0, mps: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
        monkeypatch.setattr(devices, "mps_available", lambda: mps)

    return have


@pytest.mark.parametrize(
    ("cuda", "mps", "picked"),
    [(1, True, "cuda"), (2, False, "cuda"), (0, True, "mps"), (0, False, "cpu")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(machine, cuda, mps, picked):
    machine(cuda=cuda, mps=mps)
    assert devices.pick_device("auto").type == picked


def test_mps_when_present(machine):
    machine(mps=True)
    assert devices.pick_device("mps") == torch.device("mps")
    assert devices.describe(torch.device("mps")) == "mps (Apple GPU)"


@pytest.mark.parametrize(
    ("name", "cuda", "mps", "says"),
    [
        ("mps", 1, False, "no Apple GPU"),
        ("cuda", 0, True, "no CUDA device"),
        ("cuda:1", 1, False, "CUDA devices 0 to 0"),
        ("cuda:x", 2, False, "CUDA devices 0 to 1"),
        ("tpu", 1, True, "unknown device 'tpu'"),
    ],
)
def test_absent_devices_are_refused(machine, name, cuda, mps, says):
    machine(cuda=cuda, mps=mps)
    with pytest.raises(DeviceError, match=says):
        devices.pick_device(name)


def test_cuda_index_within_the_machine(machine):
    machine(cuda=2)
    assert devices.pick_device("cuda:1") == torch.device("cuda", 1)


def test_the_cli_names_the_absent_device_in_one_line(machine, run_cli, toy_runs, tmp_path):
    machine(cuda=0, mps=False)
    result = run_cli(
        "edit",
        DATA / "astronaut.png",
        "-m",
        toy_runs["both"],
        "--set",
        "Smiling=1",
        "--device",
        "mps",
        "-o",
        tmp_path / "out.png",
    )
    assert result.exit_code == 8, result.output
    assert result.stderr.strip().splitlines() == [
        "fader: error: --device mps asked for, but this torch build sees no Apple GPU (MPS)"
    ]
    assert not (tmp_path / "out.png").exists()

"""Choosing the compute device: said out loud, never a silent fallback."""

from __future__ import annotations

import torch

from fadercli.choices import DEVICES
from fadercli.errors import DeviceError


def mps_available() -> bool:
    """Whether this torch build sees an Apple GPU (Metal Performance Shaders)."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(name: str) -> torch.device:
    """`auto` -> CUDA when available, else an Apple GPU (MPS), else the CPU; asking for a device
    that is not there is an error."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name} asked for, but this torch build sees no CUDA device")
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise DeviceError(f"--device {name}: this machine has CUDA devices 0 to {torch.cuda.device_count() - 1}")
    if name == "mps" and not mps_available():
        raise DeviceError("--device mps asked for, but this torch build sees no Apple GPU (MPS)")
    return torch.device(name)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"

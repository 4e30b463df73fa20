"""Choosing the compute device: said out loud, never a silent fallback."""

from __future__ import annotations

import torch

from fadercli.errors import DeviceError

DEVICES = ("auto", "cpu", "cuda")


def pick_device(name: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; `cuda` without CUDA is an error."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"--device {name} asked for, but this torch build sees no CUDA device")
    return torch.device(name)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"

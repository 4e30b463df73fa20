"""Choosing the compute device and the arithmetic it runs the models in: said out loud, never a
silent fallback."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from logging import WARNING

import torch

from fadercli import say
from fadercli.choices import DEVICES, PRECISIONS
from fadercli.errors import DeviceError, UsageError


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


# ---------------------------------------------------------------- precision


@dataclass(frozen=True)
class Precision:
    """The arithmetic of the models' convolutions on one device: float32, or a 16-bit type under
    autocast (weights, BatchNorm statistics, optimiser state and losses stay float32), and whether
    training lays its tensors out channels-last, which measured faster with it (docs/performance.md;
    editing always does: net.editor)."""

    name: str  # fp32, bf16 or fp16
    device_type: str
    channels_last: bool
    why: str = ""  # what auto saw, for the log line

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    @property
    def needs_scaler(self) -> bool:
        """float16's range is narrow: training scales its gradients so small ones do not flush to zero."""
        return self.name == "fp16"

    def autocast(self) -> AbstractContextManager:
        """Where convolutions and matrix products may run in 16 bits; a no-op for fp32."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def describe(self) -> str:
        arithmetic = "float32" if self.dtype is None else f"{self.name} autocast"
        return f"{arithmetic}{f' ({self.why})' if self.why else ''}"


def cpu_native_16bit() -> dict[str, str | None]:
    """The instructions that give this CPU native 16-bit arithmetic, by type (None: emulated or absent).
    Read from the CPU itself (cpuid, through torch), never guessed from its vendor."""
    cpu = getattr(torch, "cpu", None)

    def has(check: str) -> bool:
        probe = getattr(cpu, check, None)
        return bool(probe is not None and probe())

    bf16 = "AMX" if has("_is_amx_tile_supported") else "AVX-512 BF16" if has("_is_avx512_bf16_supported") else None
    return {"bf16": bf16, "fp16": "AMX-FP16" if has("_is_amx_fp16_supported") else None}


def pick_precision(name: str, device: torch.device) -> Precision:
    """`auto` -> bfloat16 autocast where the device computes it natively (CUDA with bf16 support, or a
    CPU with AVX-512 BF16 or AMX), float16 on other CUDA devices, float32 everywhere else. An explicit
    16-bit choice the device can only emulate at a crawl is refused in one line."""
    if name not in PRECISIONS:
        raise UsageError(f"unknown precision {name!r}: use {', '.join(PRECISIONS)}")
    kind = device.type
    cuda = kind == "cuda"
    native = cpu_native_16bit() if kind == "cpu" else {}
    if name == "auto":
        if cuda:
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            why = f"auto: {'bfloat16' if name == 'bf16' else 'float16'} on this GPU"
        elif native.get("bf16"):
            name, why = "bf16", f"auto: this CPU has {native['bf16']}"
        else:
            name, why = "fp32", f"auto: no native 16-bit arithmetic on {kind}"
    else:
        why = ""
    if kind == "cpu" and name == "fp16" and not native.get("fp16"):
        # Measured: float16 convolutions emulated on a CPU without it ran 50x slower than float32.
        raise DeviceError("--precision fp16: this CPU has no native float16 (AMX-FP16); use bf16 or fp32")
    if kind == "cpu" and name == "bf16" and not native.get("bf16"):
        say("this CPU has no native bfloat16 (AVX-512 BF16 or AMX): bf16 is emulated and slower than fp32", WARNING)
    # channels-last: cuDNN's fast path; on the CPU only with bf16 (training measured +5% there, -3% in fp32).
    return Precision(name, kind, channels_last=cuda or (kind == "cpu" and name == "bf16"), why=why)

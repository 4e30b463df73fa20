"""Images and the networks' tensors, both ways: pixels in [0, 1] (or uint8) as H x W x 3 arrays,
the networks' (B, 3, S, S) in [-1, 1]. One place, so every path feeds the models the same numbers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def from_crops(crops: Sequence[np.ndarray]) -> torch.Tensor:
    """H x W x 3 float crops in [0, 1] -> (B, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).mul(2).sub(1).contiguous()


def to_unit(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> B x H x W x 3 float32 in [0, 1]."""
    return x.add(1).div(2).permute(0, 2, 3, 1).float().cpu().numpy()


def from_uint8(images: np.ndarray, device: torch.device, flips: np.ndarray | None = None) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1], mirrored where `flips` says."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device, non_blocking=True)
    x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    if flips is not None and flips.any():
        mask = torch.from_numpy(flips).to(device)
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3), rounded."""
    return x.float().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Square crops resized to size x size (bilinear, antialiased); the same tensor if already there."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)

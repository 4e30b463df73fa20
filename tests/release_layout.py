"""The authors' module layout, re-stated independently of fadercli.model for compatibility tests.

Written from the architecture description in ../shared/FACTS.md (default options: transposed
convolutions, batch norm, no skips), so that a mistake in fadercli.model cannot hide behind itself.
"""

from __future__ import annotations

import torch
from torch import nn


def release_autoencoder(
    img_sz: int = 256, init_fm: int = 32, max_fm: int = 512, n_layers: int = 6, n_attr: int = 2
) -> nn.Module:
    channels = [3] + [min(init_fm * 2**i, max_fm) for i in range(n_layers)]
    enc, dec = [], []
    for i in range(n_layers):
        block = [nn.Conv2d(channels[i], channels[i + 1], 4, 2, 1)]
        if i > 0:
            block.append(nn.BatchNorm2d(channels[i + 1]))
        block.append(nn.LeakyReLU(0.2))
        enc.append(nn.Sequential(*block))
    for i in reversed(range(n_layers)):
        block = [nn.ConvTranspose2d(channels[i + 1] + n_attr, channels[i], 4, 2, 1, bias=False)]
        block += [nn.BatchNorm2d(channels[i]), nn.ReLU()] if i > 0 else [nn.Tanh()]
        dec.append(nn.Sequential(*block))
    module = nn.Module()
    module.enc_layers = nn.ModuleList(enc)
    module.dec_layers = nn.ModuleList(dec)
    return module


def release_forward(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    for layer in module.enc_layers:
        x = layer(x)
    for layer in module.dec_layers:
        x = layer(torch.cat([x, y[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], 1))
    return x


def randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and running statistics, so equal outputs mean equal arithmetic."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                values = torch.rand(t.shape, generator=g) + 0.5 if name.endswith("running_var") else (
                    torch.randn(t.shape, generator=g) * 0.05
                )
                t.copy_(values)
    return module.eval()

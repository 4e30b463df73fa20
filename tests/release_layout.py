"""The authors' module layout, re-stated independently of fadercli.model for compatibility tests.

Written from the architecture the paper and the authors describe (batch norm; the three upsampling
methods; skip connections), so that a mistake in fadercli.model cannot hide behind itself.
"""

from __future__ import annotations

import torch
from torch import nn


def _enc_block(n_in: int, n_out: int, norm: bool) -> nn.Sequential:
    block = [nn.Conv2d(n_in, n_out, 4, 2, 1)]
    if norm:
        block.append(nn.BatchNorm2d(n_out))
    block.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*block)


def release_autoencoder(
    img_sz: int = 256,
    init_fm: int = 32,
    max_fm: int = 512,
    n_layers: int = 6,
    n_attr: int = 2,
    n_skip: int = 0,
    deconv_method: str = "convtranspose",
) -> nn.Module:
    channels = [3] + [min(init_fm * 2**i, max_fm) for i in range(n_layers)]
    enc = [_enc_block(channels[i], channels[i + 1], i > 0) for i in range(n_layers)]
    dec = []
    for i in reversed(range(n_layers)):
        skip = n_layers - 1 - n_skip <= i < n_layers - 1
        n_in = channels[i + 1] * (2 if skip else 1) + n_attr
        if deconv_method == "convtranspose":
            block = [nn.ConvTranspose2d(n_in, channels[i], 4, 2, 1, bias=False)]
        elif deconv_method == "upsampling":
            block = [nn.UpsamplingNearest2d(scale_factor=2), nn.Conv2d(n_in, channels[i], 3, 1, 1)]
        else:
            block = [nn.Conv2d(n_in, 4 * channels[i], 3, 1, 1), nn.PixelShuffle(2)]
        block += [nn.BatchNorm2d(channels[i]), nn.ReLU()] if i > 0 else [nn.Tanh()]
        dec.append(nn.Sequential(*block))
    module = nn.Module()
    module.enc_layers = nn.ModuleList(enc)
    module.dec_layers = nn.ModuleList(dec)
    return module


def release_forward(module: nn.Module, x: torch.Tensor, y: torch.Tensor, n_skip: int = 0) -> torch.Tensor:
    outputs = [x]
    for layer in module.enc_layers:
        outputs.append(layer(outputs[-1]))
    x = outputs[-1]
    for k, layer in enumerate(module.dec_layers):
        parts = [x, y[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])]
        if 0 < k <= n_skip:
            parts.append(outputs[-1 - k])
        x = layer(torch.cat(parts, 1))
    return x


def release_classifier(img_sz: int, init_fm: int, max_fm: int, n_attr: int, hid_dim: int) -> nn.Module:
    """Encoder blocks down to 1x1, then Linear, LeakyReLU, Linear (call it as conv, flatten, proj)."""
    n_blocks = img_sz.bit_length() - 1
    channels = [3] + [min(init_fm * 2**i, max_fm) for i in range(n_blocks)]
    module = nn.Module()
    module.conv_layers = nn.Sequential(*(_enc_block(channels[i], channels[i + 1], i > 0) for i in range(n_blocks)))
    module.proj_layers = nn.Sequential(nn.Linear(channels[-1], hid_dim), nn.LeakyReLU(0.2), nn.Linear(hid_dim, n_attr))
    return module


def randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and running statistics, so equal outputs mean equal arithmetic."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                values = (
                    torch.rand(t.shape, generator=g) + 0.5
                    if name.endswith("running_var")
                    else (torch.randn(t.shape, generator=g) * 0.05)
                )
                t.copy_(values)
    return module.eval()

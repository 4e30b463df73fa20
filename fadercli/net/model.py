"""Fader Networks as pure nn.Modules: the autoencoder, the latent discriminator, the classifier.

No I/O and no training logic here. Module and parameter names follow the authors' release
(`enc_layers.<i>.<j>.*`, `dec_layers.<i>.<j>.*`, `conv_layers.*`, `proj_layers.*`), so their state
dicts load as they are.

Shapes, for the release's default (256 px, init_fm 32, max_fm 512, 6 blocks):
    image 3x256x256 -> encoder blocks 32x128 .. 512x4x4 (the latent z)
    decoder block k sees [h, y broadcast to h's size (, skip)] and doubles the resolution
    latent discriminator: z -> conv blocks down to 1x1 -> Linear(hid_dim) -> Linear(n_attr)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from fadercli.choices import UPSAMPLE_METHODS

# Bounds on what a config may ask for, far above any real Fader network (the release's are 32 / 512 /
# 512, CelebA has 40 attributes): a weights file's metadata must not make fader build a giant model.
MAX_FM = 4096
MAX_HID_DIM = 8192
MAX_ATTRIBUTES = 64
MAX_CATEGORIES = 256


def _check_image_geometry(config) -> int:
    """Validate the geometry configs share; return log2(img_size)."""
    img_size, init_fm, max_fm = config.img_size, config.init_fm, config.max_fm
    depth = int(math.log2(img_size)) if img_size > 0 else 0
    if img_size < 32 or img_size > 512 or 2**depth != img_size:
        raise ValueError(f"img_size must be a power of two from 32 to 512, got {img_size}")
    if not 1 <= init_fm <= max_fm <= MAX_FM:
        raise ValueError(f"need 1 <= init_fm <= max_fm <= {MAX_FM}, got init_fm={init_fm}, max_fm={max_fm}")
    if config.img_channels != 3:  # fader edits RGB photos
        raise ValueError(f"img_channels must be 3, got {config.img_channels}")
    if not 1 <= config.hid_dim <= MAX_HID_DIM:
        raise ValueError(f"hid_dim must be from 1 to {MAX_HID_DIM}, got {config.hid_dim}")
    return depth


def _normalise_attributes(obj, attributes) -> None:
    # JSON round trips turn tuples into lists; frozen dataclasses must stay hashable.
    try:
        pairs = tuple((str(name), int(n)) for name, n in attributes)
    except (TypeError, ValueError):
        raise ValueError(f"attributes must be (name, n_categories) pairs, got {attributes!r}"[:300]) from None
    if not pairs or any(not 2 <= n <= MAX_CATEGORIES for _, n in pairs):
        raise ValueError(
            f"attributes must be (name, n_categories of 2 to {MAX_CATEGORIES}) pairs, got {attributes!r}"[:300]
        )
    if len(pairs) > MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} attributes, got {len(pairs)}")
    object.__setattr__(obj, "attributes", pairs)


class _ConfigMixin:
    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict):
        """The config a file's metadata describes; ValueError for unknown fields or wrong types."""
        if not isinstance(data, dict):
            raise ValueError(f"a {cls.__name__} must be a JSON object")
        known = {f.name: f.default for f in fields(cls)}
        unknown = sorted(map(str, set(data) - set(known)))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {', '.join(unknown)}"[:300])
        for name, value in data.items():
            default = known[name]
            # bool is an int, and an int is a fine float: check the types a JSON reader gives.
            wanted = (
                (list, tuple)
                if isinstance(default, tuple)
                else (int, float)
                if type(default) is float
                else type(default)
            )
            if type(value) is bool and type(default) is not bool or not isinstance(value, wanted):
                raise ValueError(f"{cls.__name__} field {name} has the wrong type: {value!r}"[:300])
        return cls(**data)

    @property
    def n_attr(self) -> int:
        """Decoder/classifier channels: one per category of every attribute."""
        return sum(n for _, n in self.attributes)

    def fm(self, block: int) -> int:
        """Feature maps at the output of conv block `block` (0-based)."""
        return min(self.init_fm * 2**block, self.max_fm)


@dataclass(frozen=True)
class FaderConfig(_ConfigMixin):
    """Everything that fixes the shapes of a Fader autoencoder and its latent discriminator."""

    attributes: tuple[tuple[str, int], ...] = (("Eyeglasses", 2),)
    img_size: int = 256
    img_channels: int = 3
    init_fm: int = 32
    max_fm: int = 512
    n_layers: int = 6
    n_skip: int = 0
    upsample: str = "convtranspose"
    instance_norm: bool = False
    dec_dropout: float = 0.0
    hid_dim: int = 512
    lat_dis_dropout: float = 0.3

    def __post_init__(self) -> None:
        _normalise_attributes(self, self.attributes)
        depth = _check_image_geometry(self)
        if not 1 <= self.n_layers <= depth:
            raise ValueError(f"n_layers must be 1..{depth} for {self.img_size} px, got {self.n_layers}")
        if self.instance_norm and self.n_layers == depth:
            raise ValueError("instance norm needs a latent of at least 2x2: use fewer layers")
        if not 0 <= self.n_skip <= self.n_layers - 1:
            raise ValueError(f"n_skip must be 0..{self.n_layers - 1}, got {self.n_skip}")
        if self.upsample not in UPSAMPLE_METHODS:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLE_METHODS)}, got {self.upsample!r}")
        for name in ("dec_dropout", "lat_dis_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        side = self.img_size >> self.n_layers
        return (self.fm(self.n_layers - 1), side, side)


@dataclass(frozen=True)
class ClassifierConfig(_ConfigMixin):
    """An attribute classifier: the encoder's conv stack down to 1x1, then two linear layers."""

    attributes: tuple[tuple[str, int], ...] = (("Eyeglasses", 2),)
    img_size: int = 256
    img_channels: int = 3
    init_fm: int = 32
    max_fm: int = 512
    hid_dim: int = 512
    dropout: float = 0.0

    def __post_init__(self) -> None:
        _normalise_attributes(self, self.attributes)
        _check_image_geometry(self)
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def n_blocks(self) -> int:
        return int(math.log2(self.img_size))


def _norm(instance_norm: bool, n: int) -> nn.Module:
    return nn.InstanceNorm2d(n, affine=True) if instance_norm else nn.BatchNorm2d(n)


def _down_block(config, block: int, dropout: float = 0.0, instance_norm: bool = False) -> nn.Sequential:
    """Conv(4, stride 2) [+ norm, except block 0] + LeakyReLU(0.2) [+ dropout]."""
    n_in = config.img_channels if block == 0 else config.fm(block - 1)
    layers: list[nn.Module] = [nn.Conv2d(n_in, config.fm(block), 4, 2, 1)]
    if block > 0:
        layers.append(_norm(instance_norm, config.fm(block)))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def _up_block(config: FaderConfig, n_in: int, n_out: int, last: bool) -> nn.Sequential:
    """Double the resolution, then norm + [dropout] + ReLU, or Tanh for the image."""
    if config.upsample == "convtranspose":
        layers: list[nn.Module] = [nn.ConvTranspose2d(n_in, n_out, 4, 2, 1, bias=False)]
    elif config.upsample == "upsampling":
        layers = [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(n_in, n_out, 3, 1, 1)]
    else:
        layers = [nn.Conv2d(n_in, 4 * n_out, 3, 1, 1), nn.PixelShuffle(2)]
    if last:
        layers.append(nn.Tanh())
    else:
        layers.append(_norm(config.instance_norm, n_out))
        if config.dec_dropout > 0:
            layers.append(nn.Dropout(config.dec_dropout))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _to_one_by_one(blocks: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Down blocks run in turn, the last (2x2 -> 1x1) as a matrix product: a convolution of kernel 4,
    stride 2 and padding 1 on a 2x2 map sees the input only through its kernel's centre 2x2 taps, the
    rest falls on the padding. The same output for a quarter of the work: on the latent discriminator
    this convolution was a quarter of a 64 px training step."""
    for block in blocks:
        conv = block[0]
        if x.shape[-2:] != (2, 2) or conv.kernel_size != (4, 4) or conv.stride != (2, 2) or conv.padding != (1, 1):
            x = block(x)
            continue
        x = F.linear(x.flatten(1), conv.weight[:, :, 1:3, 1:3].flatten(1), conv.bias)[:, :, None, None]
        for layer in block[1:]:
            x = layer(x)
    return x


def _proj(n_in: int, hid_dim: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hid_dim), nn.LeakyReLU(0.2, inplace=True), nn.Linear(hid_dim, n_out))


class AutoEncoder(nn.Module):
    """E(x) -> z, D(z, y) -> image; y is the attribute vector of `config.n_attr` channels.

    `encode` returns a list of features, latent first, then the skip features the decoder needs,
    so callers can encode once and decode many attribute vectors (sweeps, searches).
    """

    def __init__(self, config: FaderConfig):
        super().__init__()
        self.config = config
        n, skip = config.n_layers, config.n_skip
        self.enc_layers = nn.ModuleList(_down_block(config, i, instance_norm=config.instance_norm) for i in range(n))
        dec = []
        for i in reversed(range(n)):  # decoder block k mirrors encoder block n - 1 - k
            has_skip = n - 1 - skip <= i < n - 1
            n_in = config.fm(i) + config.n_attr + (config.fm(i) if has_skip else 0)
            n_out = config.img_channels if i == 0 else config.fm(i - 1)
            dec.append(_up_block(config, n_in, n_out, last=i == 0))
        self.dec_layers = nn.ModuleList(dec)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for layer in self.enc_layers:
            x = layer(x)
            outputs.append(x)
        # Latent first, then the outputs of blocks n-2, n-3, ... that skip connections read.
        return [outputs[-1 - k] for k in range(self.config.n_skip + 1)]

    def decode(self, features: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        h = features[0]
        y = y.to(h.dtype)[:, :, None, None]
        for k, layer in enumerate(self.dec_layers):
            y_map = y.expand(-1, -1, h.shape[2], h.shape[3])
            if h.is_contiguous(memory_format=torch.channels_last):
                # An expanded map has no layout of its own, so the concatenation would come out
                # channels-first and each layer would copy it back (a fifth of inference at 256 px).
                y_map = y_map.contiguous(memory_format=torch.channels_last)
            parts = [h, y_map]
            if 0 < k <= self.config.n_skip:
                parts.append(features[k])
            h = layer(torch.cat(parts, 1))
        return h

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), y)


class LatentDiscriminator(nn.Module):
    """Predicts the attributes from the latent z: logits of shape (batch, n_attr).

    Always batch norm: its blocks end at 1x1, where instance norm would erase everything.
    """

    def __init__(self, config: FaderConfig):
        super().__init__()
        self.config = config
        depth = int(math.log2(config.img_size))
        self.conv_layers = nn.Sequential(
            *(_down_block(config, i, config.lat_dis_dropout) for i in range(config.n_layers, depth))
        )
        self.proj_layers = _proj(config.fm(depth - 1), config.hid_dim, config.n_attr)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.proj_layers(_to_one_by_one(self.conv_layers, z).flatten(1))


class Classifier(nn.Module):
    """Predicts the attributes from an image: logits of shape (batch, n_attr)."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        self.conv_layers = nn.Sequential(*(_down_block(config, i, config.dropout) for i in range(config.n_blocks)))
        self.proj_layers = _proj(config.fm(config.n_blocks - 1), config.hid_dim, config.n_attr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_layers(_to_one_by_one(self.conv_layers, x).flatten(1))


@torch.no_grad()
def fold_batchnorm(ae: AutoEncoder) -> AutoEncoder:
    """An inference copy of `ae` whose BatchNorms are folded into the convolutions before them.

    In eval mode a BatchNorm is a per-channel scale and shift, which the preceding convolution can
    absorb: one pass over each activation map fewer, same outputs up to float rounding.
    InstanceNorm depends on the input and stays as it is.
    """
    import copy

    folded = copy.deepcopy(ae).eval()
    for block in [*folded.enc_layers, *folded.dec_layers]:
        for i, norm in enumerate(block):
            if not isinstance(norm, nn.BatchNorm2d):
                continue
            conv, repeat = block[i - 1], 1
            if isinstance(conv, nn.PixelShuffle):  # each normed channel came from r*r conv channels
                conv, repeat = block[i - 2], conv.upscale_factor**2
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            shift = norm.bias - norm.running_mean * scale
            scale, shift = scale.repeat_interleave(repeat), shift.repeat_interleave(repeat)
            out_dim = 1 if isinstance(conv, nn.ConvTranspose2d) else 0  # where output channels sit
            shape = [1] * conv.weight.dim()
            shape[out_dim] = -1
            conv.weight.mul_(scale.view(shape))
            bias = conv.bias * scale if conv.bias is not None else 0
            conv.bias = nn.Parameter(bias + shift)
            block[i] = nn.Identity()
    return folded

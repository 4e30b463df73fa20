"""Editing aligned face crops with a Fader model: encode once, decode many, compose the edit.

A decoder reproduces a face only approximately, so an edit is not shown as the bare decode.
`compose` keeps the input's own pixels wherever the edit leaves the decode unchanged and takes
the decoded edit where the attribute changes the face: an edit to the face's current values
returns the input exactly, and detail the model cannot draw (texture, hair, background) stays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from fadercli.attributes import AttributeSet
from fadercli.devices import Precision, pick_precision
from fadercli.net.model import AutoEncoder, fold_batchnorm

# A pixel keeps the input while the edit moves it less than CHANGE_FLOOR of the edit's largest
# move (decoder noise away from the attribute), then fades into the decoded edit over CHANGE_RAMP.
CHANGE_FLOOR = 0.2
CHANGE_RAMP = 0.2
# Edits whose largest move (in [-1, 1] units) is under SMALL_EDIT are blended in proportionally,
# so a slider near the face's own value moves smoothly.
SMALL_EDIT = 0.1
# Values tried for each attribute when estimating a face's own values, before refining.
SEARCH_GRID = 7
SEARCH_RANGE = (-0.25, 1.25)


def compose(x: torch.Tensor, recon: torch.Tensor, edit: torch.Tensor) -> torch.Tensor:
    """The input where the edit changes nothing, the decoded edit where it changes the face.

    Per pixel, how much the edit moves it (max over channels, dilated by one pixel so the edges of
    a changed region come whole), relative to the largest move in the face, picks between the
    decoded edit and the input plus the decoded change (docs/experiments.md, "Composing").
    """
    change = F.max_pool2d((edit - recon).abs().amax(1, keepdim=True), 3, 1, 1)
    peak = change.flatten(1).amax(1).clamp_min(1e-6).view(-1, 1, 1, 1)
    weight = ((change - CHANGE_FLOOR * peak) / (CHANGE_RAMP * peak)).clamp(0, 1) * (peak / SMALL_EDIT).clamp(max=1)
    return (edit + (x - recon) * (1 - weight)).clamp(-1, 1)


def channels(attributes: AttributeSet, values: torch.Tensor) -> torch.Tensor:
    """Slider values (B, n_attributes) -> decoder input (B, n_channels): a -> (1 - a, a); categories one-hot."""
    parts = []
    for i, a in enumerate(attributes):
        v = values[:, i : i + 1]
        if a.binary:
            parts += [1 - v, v]
        else:
            parts.append(F.one_hot(v.round().long().clamp(0, a.n_categories - 1)[:, 0], a.n_categories).to(v.dtype))
    return torch.cat(parts, 1)


class Editor:
    """A Fader autoencoder ready for editing crops given as float tensors in [-1, 1].

    Works on its own inference copy of the model (BatchNorm folded into the convolutions,
    channels-last), so the model it was given, e.g. one still training, is left as it is. With a
    16-bit `precision` the convolutions run under autocast; what leaves the editor (decodes, the
    estimate's errors) is float32, so composing and pasting are the same arithmetic at any precision."""

    def __init__(
        self,
        model: AutoEncoder,
        device: torch.device | str = "cpu",
        batch_size: int = 64,
        precision: Precision | None = None,
    ):
        self.attributes = AttributeSet.from_pairs(model.config.attributes)
        self.device = torch.device(device)
        # channels-last suits oneDNN's and cuDNN's convolutions (1.1-1.3x here, docs/experiments.md)
        self.model = fold_batchnorm(model).to(self.device, memory_format=torch.channels_last)
        self.batch_size = batch_size
        self.img_size = model.config.img_size
        self.precision = precision or pick_precision("fp32", self.device)

    @torch.inference_mode()
    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's features of every crop, in batches of `batch_size` (however many faces a photo has)."""
        x = x.to(self.device).contiguous(memory_format=torch.channels_last)
        with self.precision.autocast():
            if len(x) <= self.batch_size:
                return self.model.encode(x)
            parts = [
                self.model.encode(x[start : start + self.batch_size]) for start in range(0, len(x), self.batch_size)
            ]
        return [torch.cat(level) for level in zip(*parts)]

    @torch.inference_mode()
    def decode(self, features: list[torch.Tensor], values: torch.Tensor) -> torch.Tensor:
        """Decode (B, n_attributes) slider values, in batches of `batch_size`."""
        values = values.to(self.device, torch.float32)
        out = []
        for start in range(0, len(values), self.batch_size):
            chunk = [f[start : start + self.batch_size] for f in features]
            out.append(self._decode(chunk, channels(self.attributes, values[start : start + self.batch_size])))
        return torch.cat(out)

    def _decode(self, features: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            return self.model.decode(features, y).float()

    @torch.inference_mode()
    def estimate(self, x: torch.Tensor, features: list[torch.Tensor] | None = None, passes: int = 1) -> torch.Tensor:
        """Each face's own slider values: those whose reconstruction matches it best (`search`)."""
        x = x.to(self.device)
        features = features if features is not None else self.encode(x)
        return search(self.attributes, len(x), lambda trial: self._errors(x, features, trial), self.device, passes)

    def _errors(self, x: torch.Tensor, features: list[torch.Tensor], trial: torch.Tensor) -> torch.Tensor:
        """MSE to its face of each trial decode; trial rows come k per face. Batched so memory stays
        at one batch of decodes, whatever the number of faces and trials."""
        k = len(trial) // len(x)
        errors = []
        for start in range(0, len(trial), self.batch_size):
            faces = torch.arange(start, min(start + self.batch_size, len(trial)), device=self.device) // k
            decoded = self._decode(
                [f[faces] for f in features], channels(self.attributes, trial[start : start + len(faces)])
            )
            errors.append((decoded - x[faces]).pow(2).flatten(1).mean(1))
        return torch.cat(errors)

    def values_for(
        self,
        estimate: torch.Tensor,
        absolute: Mapping[str, float] | None = None,
        shift: Mapping[str, float] | None = None,
    ) -> torch.Tensor:
        """Target values: the estimate, with some attributes set (`absolute`) or moved (`shift`)."""
        target = estimate.clone()
        for name, value in (absolute or {}).items():
            target[:, self.attributes.index(name)] = value
        for name, delta in (shift or {}).items():
            target[:, self.attributes.index(name)] += delta
        return target

    @torch.inference_mode()
    def analyse(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """(features, estimated values, reconstruction at those values): what every edit starts from."""
        x = x.to(self.device)
        features = self.encode(x)
        estimate = self.estimate(x, features)
        return features, estimate, self.decode(features, estimate)

    @torch.inference_mode()
    def edit(
        self, x: torch.Tensor, absolute: Mapping[str, float] | None = None, shift: Mapping[str, float] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(edited crops, the faces' estimated values, the target values) for a batch of crops."""
        x = x.to(self.device)
        return self.render(x, self.analyse(x), absolute, shift)

    @torch.inference_mode()
    def render(
        self,
        x: torch.Tensor,
        analysis: tuple[list[torch.Tensor], torch.Tensor, torch.Tensor],
        absolute: Mapping[str, float] | None = None,
        shift: Mapping[str, float] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`edit` from an analysis of `x` (what `analyse(x)` returned): one decode and the composition.
        A face given its own values comes back exactly as it was (compose would be off by rounding)."""
        features, estimate, recon = analysis
        x = x.to(self.device)
        target = self.values_for(estimate, absolute, shift)
        if (target == estimate).all():
            return x, estimate, target
        return finish(x, recon, self.decode(features, target), estimate, target), estimate, target

    @torch.inference_mode()
    def sweep(
        self,
        x: torch.Tensor,
        attribute: str,
        values: Sequence[float],
        analysis: tuple[list[torch.Tensor], torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """(B, len(values), 3, S, S): each face with one attribute slid through `values`.

        One encoder pass per face; all steps decoded in batches. `analysis` (what `analyse(x)`
        returned) lets several attributes be swept from one encoding.
        """
        x = x.to(self.device)
        features, estimate, recon = analysis if analysis is not None else self.analyse(x)
        i, k = self.attributes.index(attribute), len(values)
        trial = estimate.repeat_interleave(k, 0)
        trial[:, i] = torch.tensor(list(values), device=self.device, dtype=trial.dtype).repeat(len(x))
        decoded = self.decode([f.repeat_interleave(k, 0) for f in features], trial)
        out = compose(x.repeat_interleave(k, 0), recon.repeat_interleave(k, 0), decoded)
        return out.view(len(x), k, *x.shape[1:])


def search(
    attributes: AttributeSet,
    n: int,
    errors: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device | str = "cpu",
    passes: int = 1,
) -> torch.Tensor:
    """The coordinate search for `n` faces' own values (n, n_attributes): per attribute, a grid of
    values (the others held), then a parabola through the best grid point and its neighbours;
    categorical attributes take the best index. `errors(trial)` scores trial values (k rows per face,
    in face order) by how far their decode is from the face. Written without in-place writes or
    data-dependent branches, so the exported ONNX graph traces this very code (share/onnx.py)."""
    values = torch.tensor([0.5 if a.binary else 0.0 for a in attributes], device=device).expand(n, -1)
    for _ in range(passes):
        for i, a in enumerate(attributes):
            if a.binary:
                grid = torch.linspace(*SEARCH_RANGE, SEARCH_GRID, device=values.device)
            else:
                grid = torch.arange(a.n_categories, device=values.device, dtype=torch.float32)
            k = len(grid)
            trial = values[:, None, :].expand(n, k, -1)
            trial = _with_column(trial, i, grid.expand(n, k)).reshape(n * k, -1)
            scores = errors(trial).view(n, k)
            best = scores.argmin(1)
            chosen = grid[best]
            if a.binary:
                chosen = chosen + _parabola_offset(scores, best) * (grid[1] - grid[0])
            values = _with_column(values, i, chosen)
    return values


def finish(
    x: torch.Tensor, recon: torch.Tensor, decoded: torch.Tensor, estimate: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """An edit as shown: `compose`d, and the input itself for a face given its own values (compose
    would be off by rounding there)."""
    same = (target == estimate).all(1)
    return torch.where(same[:, None, None, None], x, compose(x, recon, decoded))


def _with_column(values: torch.Tensor, i: int, column: torch.Tensor) -> torch.Tensor:
    """`values` (..., n_attributes) with attribute i replaced by `column` (...), as a new tensor."""
    return torch.cat([values[..., :i], column[..., None].to(values.dtype), values[..., i + 1 :]], -1)


def _parabola_offset(errors: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
    """Sub-grid position of the minimum from the best point and its two neighbours (0 at the ends)."""
    k = errors.shape[1]
    inner = best.clamp(1, k - 2)
    left, mid, right = (errors.gather(1, (inner + d)[:, None])[:, 0] for d in (-1, 0, 1))
    curvature = left - 2 * mid + right
    offset = torch.where(curvature > 0, 0.5 * (left - right) / curvature.clamp_min(1e-12), torch.zeros_like(mid))
    at_end = (best == 0) | (best == k - 1)
    return torch.where(at_end, torch.zeros_like(offset), offset.clamp(-0.5, 0.5))

"""The edit as two pure graphs, the shape an exported model takes (share/onnx_export.py):

    analyse(image) -> estimate, recon, feature_0 [, feature_1, ...]
    render(image, recon, estimate, values, feature_0 [, ...]) -> edited

`analyse` encodes each face once, finds its own slider values (editor.search) and decodes its
reconstruction there; `render` decodes the face at any values and composes the edit
(editor.finish). A slider moved in a browser costs one render; an edit, one of each. Both are
built from the functions Editor runs, with every step's batch in one piece (a graph's batch is its
caller's to choose), so an exported model edits as `fader edit` does at float32.

Images are (B, 3, S, S) RGB in [-1, 1]; values are slider values (B, n_attributes): the graphs
turn them into the decoder's channels themselves (editor.channels).
"""

from __future__ import annotations

import torch
from torch import nn

from fadercli.attributes import AttributeSet
from fadercli.net.editor import channels, finish, search
from fadercli.net.model import AutoEncoder, fold_batchnorm


def feature_names(model: AutoEncoder) -> list[str]:
    """The names of the encoder's features between the graphs: the latent, then the skip features."""
    return [f"feature_{k}" for k in range(model.config.n_skip + 1)]


class Analyse(nn.Module):
    """image -> (estimate, recon, *features): each face's own values, its reconstruction at them, and
    what `Render` decodes from."""

    def __init__(self, model: AutoEncoder):
        super().__init__()
        self.model = fold_batchnorm(model)
        self.attributes = AttributeSet.from_pairs(model.config.attributes)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.model.encode(image)
        n = image.shape[0]

        def errors(trial: torch.Tensor) -> torch.Tensor:
            k = trial.shape[0] // n  # trial rows come k per face
            decoded = self.model.decode([f.repeat_interleave(k, 0) for f in features], channels(self.attributes, trial))
            return (decoded - image.repeat_interleave(k, 0)).pow(2).flatten(1).mean(1)

        estimate = search(self.attributes, n, errors, image.device)
        recon = self.model.decode(features, channels(self.attributes, estimate))
        return (estimate, recon, *features)


class Render(nn.Module):
    """(image, recon, estimate, values, *features) -> the face edited to `values`: composed with the
    input where the edit changes nothing, and the input itself where `values` are its own."""

    def __init__(self, model: AutoEncoder):
        super().__init__()
        self.model = fold_batchnorm(model)
        self.attributes = AttributeSet.from_pairs(model.config.attributes)

    def forward(
        self,
        image: torch.Tensor,
        recon: torch.Tensor,
        estimate: torch.Tensor,
        values: torch.Tensor,
        *features: torch.Tensor,
    ) -> torch.Tensor:
        decoded = self.model.decode(list(features), channels(self.attributes, values))
        return finish(image, recon, decoded, estimate, values)

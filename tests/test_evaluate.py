"""The run's evaluation cannot be fooled by blur: with a decoder that draws the exact counterfactual
nothing is flagged, and the same decoder blurred is flagged in the directions it fails."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fadercli.attributes import AttributeSet
from fadercli.net.model import FaderConfig
from fadercli.train import toyfaces
from fadercli.train.evaluate import evaluate, summary_lines
from fadercli.weights.format import load_model

NAMES = ("Eyeglasses", "Smiling")
SIZE = 32


class Oracle(nn.Module):
    """An autoencoder that knows the toy faces it is shown: `encode` finds which face an image is,
    `decode` draws that face with the attributes asked for (fractional values blend the drawings
    linearly), so every edit is the exact counterfactual; `blur` blurs whatever it draws."""

    def __init__(self, params: dict, blur: float = 0.0):
        super().__init__()
        self.enc_layers, self.dec_layers = nn.ModuleList(), nn.ModuleList()  # nothing to fold
        self.config = FaderConfig(tuple((n, 2) for n in NAMES), img_size=SIZE, init_fm=8, max_fm=32, n_layers=3)
        self.blur = blur
        self.faces = _tensor(toyfaces.render(params, SIZE))
        # Every face with each combination of the two attributes: [face, eyeglasses, smiling].
        self.drawn = torch.stack(
            [
                torch.stack(
                    [
                        _tensor(
                            toyfaces.render(
                                {
                                    **params,
                                    "Eyeglasses": np.full_like(params["Eyeglasses"], g),
                                    "Smiling": np.full_like(params["Smiling"], s),
                                },
                                SIZE,
                            )
                        )
                        for s in (0, 1)
                    ],
                    1,
                )
                for g in (0, 1)
            ],
            1,
        )

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        index = torch.cdist(x.flatten(1).float(), self.faces.flatten(1)).argmin(1)
        return [index.view(-1, 1, 1, 1).float()]

    def decode(self, features: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        index = features[0].view(-1).long()
        g, s = y[:, 1].view(-1, 1, 1, 1), y[:, 3].view(-1, 1, 1, 1)
        d = self.drawn[index]
        out = (1 - g) * ((1 - s) * d[:, 0, 0] + s * d[:, 0, 1]) + g * ((1 - s) * d[:, 1, 0] + s * d[:, 1, 1])
        if self.blur:
            k = torch.exp(-torch.arange(-3, 4.0).pow(2) / (2 * self.blur**2))
            k = (k[:, None] * k[None, :] / k.sum() ** 2).expand(3, 1, 7, 7)
            out = F.conv2d(F.pad(out, (3, 3, 3, 3), mode="replicate"), k, groups=3)
        return out


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def _evaluate(toy_runs, blur: float, without: str | None = None) -> dict:
    """The oracle's scores; `without`: an attribute no validation face is labelled with."""
    params = toyfaces.sample(160, seed=11, style="plain")
    clf = load_model(toy_runs["both"] / "classifier.safetensors").model.eval()
    labels = toyfaces.labels(params)[:, [toyfaces.ATTRIBUTES.index(n) for n in NAMES]]
    if without:
        labels[:, NAMES.index(without)] = 0
    images = toyfaces.render(params, SIZE)
    chunks = [(images[i : i + 80], labels[i : i + 80]) for i in (0, 80)]
    return evaluate(Oracle(params, blur), clf, AttributeSet.binary(NAMES), chunks, device=torch.device("cpu"))


def test_exact_counterfactuals_look_real(toy_runs):
    result = _evaluate(toy_runs, blur=0)
    for name in NAMES:
        for direction, ratio in result["sharpness"][name].items():
            assert 0.8 < ratio < 1.25, (name, direction, ratio)
    assert not [w for w in result["warnings"] if "BLURRED" in w or "LEFTOVERS" in w]


def test_a_blurred_decoder_is_flagged_and_its_edits_do_not_count(toy_runs):
    result = _evaluate(toy_runs, blur=1.5)
    flagged = {tuple(w.split(":")[0].split(" ", 1)) for w in result["warnings"] if "BLURRED" in w or "LEFTOVERS" in w}
    # Drawing an attribute blurred is what fools a classifier: every adding direction is caught.
    assert {(name, "adding") for name in NAMES} <= flagged, result["warnings"]
    for name in NAMES:
        assert result["sharpness"][name]["adding"] < 0.7
        assert result["swap_accuracy"][name]["adding"] <= result["swap_accuracy_classifier"][name]["adding"]
    text = "\n".join(summary_lines(result))
    assert "look BLURRED" in text and "sharpness" in text


def test_a_direction_with_nothing_to_measure_says_so_and_is_null_in_json(toy_runs, tmp_path):
    """No validation face with glasses: removing them has no face to edit, and adding them no real face
    to compare sharpness with. The summary and the card say so in words; the JSON that metrics.jsonl,
    --json and the card's metadata carry has null there, never NaN (which is not JSON)."""
    import json
    import shutil

    from fadercli.train.card import model_card

    result = _evaluate(toy_runs, blur=0, without="Eyeglasses")
    assert result["swap_faces"]["Eyeglasses"]["removing"] == 0
    assert result["swap_accuracy"]["Eyeglasses"]["removing"] is None
    assert result["sharpness"]["Eyeglasses"]["adding"] is None
    assert None not in result["swap_accuracy"]["Smiling"].values()  # the other attribute is measured as ever
    json.dumps(result, allow_nan=False)
    text = "\n".join(summary_lines(result))
    assert "nan" not in text.lower()
    assert "removing not measured (no validation face to edit" in text
    assert "sharpness none: no validation face has that value] of 160" in text

    run = tmp_path / "run"
    shutil.copytree(toy_runs["both"], run)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 6, "eval": result}, allow_nan=False) + "\n")
    card = model_card(run)
    assert "nan" not in card.lower()
    assert "| Eyeglasses | removing | not measured: no validation face to edit | | 0 |" in card
    assert "| none: no validation face has that value |" in card
    meta = json.loads(next(line for line in card.splitlines() if line.startswith("fader: "))[len("fader: ") :])
    assert meta["swap_accuracy"]["Eyeglasses"] == {
        "adding": result["swap_accuracy"]["Eyeglasses"]["adding"],
        "removing": None,
    }

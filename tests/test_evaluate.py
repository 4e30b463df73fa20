"""The run's evaluation cannot be fooled by blur or traces: with a decoder that draws the exact
counterfactual nothing is flagged, the same decoder blurred is flagged where it draws, and a ghost
of the face as it was (the counterfactual blended 30% with the original) where it removes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fadercli.attributes import AttributeSet
from fadercli.net.model import FaderConfig
from fadercli.net.tensors import from_uint8
from fadercli.train import toyfaces
from fadercli.train.classifiers import judge_config, train_classifiers
from fadercli.train.evaluate import evaluate, summary_lines

NAMES = ("Eyeglasses", "Smiling")
SIZE = 32


class Oracle(nn.Module):
    """An autoencoder that knows the toy faces it is shown: `encode` finds which face an image is,
    `decode` draws that face with the attributes asked for (fractional values blend the drawings
    linearly), so every edit is the exact counterfactual; `blur` blurs whatever it draws."""

    def __init__(self, params: dict, blur: float = 0.0, ghost: float = 0.0):
        super().__init__()
        self.enc_layers, self.dec_layers = nn.ModuleList(), nn.ModuleList()  # nothing to fold
        self.config = FaderConfig(tuple((n, 2) for n in NAMES), img_size=SIZE, init_fm=8, max_fm=32, n_layers=3)
        self.blur, self.ghost = blur, ghost
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
        if self.ghost:  # what the face was shows through what it is asked to be
            out = (1 - self.ghost) * out + self.ghost * self.faces[index]
        return out


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


@pytest.fixture(scope="module")
def judge():
    """An evaluation classifier as a run trains it (faded faces and all), on plain toy faces."""
    attributes = AttributeSet.binary(NAMES)
    params = toyfaces.sample(2000, seed=1, style="plain")
    images = toyfaces.render(params, SIZE)
    labels = torch.from_numpy(toyfaces.labels(params)[:, [toyfaces.ATTRIBUTES.index(n) for n in NAMES]])
    rng = np.random.default_rng(0)

    def batches(step):
        rows = rng.integers(0, len(images), 64)
        return from_uint8(images[rows], torch.device("cpu"), rng.random(64) < 0.5), labels[rows]

    config = judge_config(attributes, SIZE)
    [clf], _ = train_classifiers(
        attributes, [(config, 0.0, "presence")], batches, steps=800, device=torch.device("cpu")
    )
    return clf


def _evaluate(clf, blur: float = 0.0, ghost: float = 0.0, without: str | None = None) -> dict:
    """The oracle's scores; `without`: an attribute no validation face is labelled with."""
    params = toyfaces.sample(160, seed=11, style="plain")
    labels = toyfaces.labels(params)[:, [toyfaces.ATTRIBUTES.index(n) for n in NAMES]]
    if without:
        labels[:, NAMES.index(without)] = 0
    images = toyfaces.render(params, SIZE)
    chunks = [(images[i : i + 80], labels[i : i + 80]) for i in (0, 80)]
    return evaluate(Oracle(params, blur, ghost), clf, AttributeSet.binary(NAMES), chunks, device=torch.device("cpu"))


def test_exact_counterfactuals_look_real(judge):
    result = _evaluate(judge)
    for name in NAMES:
        for direction, ratio in result["sharpness"][name].items():
            assert 0.8 < ratio < 1.25, (name, direction, ratio)
    assert not [w for w in result["warnings"] if "BLURRED" in w or "LEFTOVERS" in w]


def test_a_blurred_decoder_is_flagged_and_its_edits_do_not_count(judge):
    result = _evaluate(judge, blur=1.5)
    flagged = {tuple(w.split(":")[0].split(" ", 1)) for w in result["warnings"] if "BLURRED" in w or "LEFTOVERS" in w}
    # Drawing an attribute blurred is what fools a classifier: every adding direction is caught.
    assert {(name, "adding") for name in NAMES} <= flagged, result["warnings"]
    for name in NAMES:
        assert result["sharpness"][name]["adding"] < 0.7
        assert result["swap_accuracy"][name]["adding"] <= result["swap_accuracy_classifier"][name]["adding"]
    text = "\n".join(summary_lines(result))
    assert "look BLURRED" in text and "sharpness" in text


def test_a_ghost_of_what_was_removed_is_flagged_and_its_edits_do_not_count(judge):
    exact, ghost = _evaluate(judge), _evaluate(judge, ghost=0.3)
    flagged = {tuple(w.split(":")[0].split(" ", 1)) for w in ghost["warnings"] if "TRACES" in w}
    assert {(name, "removing") for name in NAMES} <= flagged, ghost["warnings"]
    assert not [w for w in exact["warnings"] if "TRACES" in w or "FAINT" in w]
    for name in NAMES:
        assert ghost["swap_accuracy"][name]["removing"] < exact["swap_accuracy"][name]["removing"] - 0.15
    assert "leave TRACES of Eyeglasses" in "\n".join(summary_lines(ghost))


def test_a_direction_with_nothing_to_measure_says_so_and_is_null_in_json(judge, toy_runs, tmp_path):
    """No validation face with glasses: removing them has no face to edit, and adding them no real face
    to compare sharpness with. The summary and the card say so in words; the JSON that metrics.jsonl,
    --json and the card's metadata carry has null there, never NaN (which is not JSON)."""
    import json
    import shutil

    from fadercli.train.card import model_card

    result = _evaluate(judge, without="Eyeglasses")
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

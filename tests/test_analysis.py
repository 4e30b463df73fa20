"""A photo analysed once and rendered again and again, as a slider does: chained models re-run only
from the one whose value moved, and the memo gives back exactly what a fresh render gives."""

from __future__ import annotations

import numpy as np
import torch

from fadercli.api import Fader
from fadercli.net.model import AutoEncoder, FaderConfig


def _chain() -> tuple[Fader, dict[str, list[str]]]:
    """Two small random models chained (Eyeglasses, then Smiling), their editors' work counted."""
    torch.manual_seed(0)
    models = [
        AutoEncoder(FaderConfig(((name, 2),), img_size=32, init_fm=8, max_fm=32, n_layers=3)).eval()
        for name in ("Eyeglasses", "Smiling")
    ]
    fader = Fader(models, device="cpu")
    calls: dict[str, list[str]] = {"Eyeglasses": [], "Smiling": []}
    for model in fader.models:
        name = model.attributes.names[0]
        for method in ("analyse", "render"):
            original = getattr(model.editor, method)

            def counted(*args, _original=original, _name=name, _method=method, **kwargs):
                calls[_name].append(_method)
                return _original(*args, **kwargs)

            setattr(model.editor, method, counted)
    return fader, calls


def _photo() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)


def test_moving_one_slider_reruns_only_the_models_from_its_own_on():
    fader, calls = _chain()
    analysis = fader.analyse(_photo(), align=False)
    first = analysis.render(faces={0: {"Eyeglasses": 1.0, "Smiling": 0.0}})
    assert calls == {"Eyeglasses": ["analyse", "render"], "Smiling": ["analyse", "render"]}

    for name in calls:
        calls[name].clear()
    moved = analysis.render(faces={0: {"Eyeglasses": 1.0, "Smiling": 1.0}})  # the second model's slider
    assert calls == {"Eyeglasses": [], "Smiling": ["render"]}  # its input comes from the memo, analysed once

    for name in calls:
        calls[name].clear()
    again = analysis.render(faces={0: {"Eyeglasses": 0.5, "Smiling": 1.0}})  # the first model's slider
    assert calls == {"Eyeglasses": ["render"], "Smiling": ["analyse", "render"]}  # a new input for the second

    for name in calls:
        calls[name].clear()
    back = analysis.render(faces={0: {"Eyeglasses": 1.0, "Smiling": 1.0}})  # a position seen before
    assert calls == {"Eyeglasses": [], "Smiling": ["render"]}
    assert np.array_equal(back.image.pixels, moved.image.pixels)

    # Every memoised render equals a fresh analysis's render of the same values.
    for values, result in (({"Eyeglasses": 1.0, "Smiling": 0.0}, first), ({"Eyeglasses": 0.5, "Smiling": 1.0}, again)):
        fresh = fader.analyse(_photo(), align=False).render(faces={0: values})
        assert np.array_equal(fresh.image.pixels, result.image.pixels)

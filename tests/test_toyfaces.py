"""Toy faces: exact counterfactuals in every style, visible attributes, styles that differ."""

import numpy as np
import pytest

from fadercli.train import toyfaces


@pytest.mark.parametrize("style", list(toyfaces.STYLES))
def test_counterfactuals_are_exact_and_every_attribute_shows(style):
    params = toyfaces.sample(32, seed=3, style=style)
    faces = toyfaces.render(params, 64)
    for name in toyfaces.ATTRIBUTES:
        flipped = toyfaces.render(toyfaces.flipped(params, name), 64)
        back = toyfaces.render(toyfaces.flipped(toyfaces.flipped(params, name), name), 64)
        assert np.array_equal(back, faces), name  # flipped back: the original, bit for bit
        changed = (np.abs(flipped.astype(int) - faces).max(-1) > 12).sum((1, 2))
        assert np.median(changed) >= 10 and (changed > 0).mean() >= 0.95, (name, changed)


def test_a_face_flipped_twice_in_a_batch_of_others_is_unchanged_by_its_neighbours():
    params = toyfaces.sample(6, seed=8)
    alone = toyfaces.render({k: v[2:3] for k, v in params.items()}, 64)
    assert np.array_equal(toyfaces.render(params, 64)[2:3], alone)  # rendering is per face


def test_styles_differ():
    by_style = {style: toyfaces.sample(96, seed=1, style=style) for style in toyfaces.STYLES}
    images = {style: toyfaces.render(p, 64) for style, p in by_style.items()}
    for a in toyfaces.STYLES:
        for b in toyfaces.STYLES:
            if a < b:
                assert not np.array_equal(images[a], images[b])
    # Camera effects: a clean drawing does not depend on its grain, a mixed one with noise does.
    clean, mixed = by_style["clean"], by_style["mixed"]
    reseeded = {**clean, "grain_seed": clean["grain_seed"] + 1}
    assert np.array_equal(toyfaces.render(reseeded, 64), images["clean"])
    noisy = np.flatnonzero(mixed["noise"] > 0)
    reseeded = {**mixed, "grain_seed": mixed["grain_seed"] + 1}
    assert not np.array_equal(toyfaces.render(reseeded, 64)[noisy], images["mixed"][noisy])
    # The thin style draws low-contrast pictures; the held-out one squarer faces than any other draws.
    assert images["thin"].std() < 0.85 * images["clean"].std()
    assert by_style["heldout"]["jaw"].min() > max(by_style[s]["jaw"].max() for s in ("mixed", "clean", "thin"))


def test_every_variant_appears_and_labels_follow_their_probabilities():
    params = toyfaces.sample(2000, seed=2, p=[0.5, 0.3, 0.5, 0.7])
    for kind, n in (("hair_kind", 4), ("mouth_kind", 3), ("iris", 6), ("bg_kind", 6), ("eye_kind", 3)):
        assert set(np.unique(params[kind]).astype(int)) == set(range(n)), kind
    assert 1.0 <= params["line_px"].min() < 1.1 and 2.9 < params["line_px"].max() <= 3.0  # the whole 1-3 px span drawn
    assert toyfaces.labels(params).mean(0) == pytest.approx([0.5, 0.3, 0.5, 0.7], abs=0.04)
    with pytest.raises(ValueError, match="unknown toy face style"):
        toyfaces.sample(1, style="nope")

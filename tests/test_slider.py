"""The method works: a short CPU run on toy faces learns sliders that move held-out faces towards
their true counterfactual (the same face rendered with one attribute flipped). The faces are of the
"plain" toy style, one drawing convention, which a run this short learns; how the training recipe
fares on many styles, and on a held-out one, is research (benchmarks/toy_quality.py)."""

import torch

from fadercli.net.editor import Editor, compose
from fadercli.net.tensors import from_uint8 as to_tensor
from fadercli.train import toyfaces
from fadercli.train.config import TrainConfig
from fadercli.train.data import prepare
from fadercli.train.run import train
from fadercli.weights.format import load_model


def test_sliders_move_held_out_faces_towards_their_counterfactuals(tmp_path):
    data = toyfaces.write_dataset(tmp_path / "toy", 3000, size=32, seed=0, style="plain")
    dataset = prepare(data, img_size=32, cache_root=tmp_path / "cache")
    config = TrainConfig(img_size=32, max_steps=1200, seed=0, previews=0)  # about a minute on 2 cores
    train(dataset, config, tmp_path / "run", device=torch.device("cpu"), show_progress=False, log=lambda m: None)

    editor = Editor(load_model(tmp_path / "run" / "model.safetensors").model)
    params = toyfaces.sample(200, seed=123, style="plain")  # never seen in training
    cpu = torch.device("cpu")
    x = to_tensor(toyfaces.render(params, 32), cpu)
    labels = torch.from_numpy(toyfaces.labels(params)).float()
    features, estimate, recon = editor.analyse(x)
    closer, remaining = {}, {}
    for i, name in enumerate(toyfaces.ATTRIBUTES):
        target = estimate.clone()
        target[:, i] = 1 - labels[:, i]
        edited = compose(x, recon, editor.decode(features, target))
        truth = to_tensor(toyfaces.render(toyfaces.flipped(params, name), 32), cpu)
        error_after = (edited - truth).pow(2).flatten(1).mean(1)
        error_before = (x - truth).pow(2).flatten(1).mean(1)
        closer[name] = float((error_after < error_before).float().mean())
        remaining[name] = float(error_after.mean() / error_before.mean())
    # Measured on 2 CPU cores with torch 2.13 (seeds 0 and 1): 70-90% of faces closer, and the
    # edits leave 36-81% of the error of not editing, Smiling (a small mouth curve at 32 px) the
    # weakest. The share of faces moves by a few faces with the float rounding of the machine, so
    # the bars leave room for that; an untrained decoder, or one that ignores the attributes, moves
    # no face closer and leaves all of the error.
    assert min(closer.values()) >= 0.65, closer
    assert max(remaining.values()) <= 0.9, remaining
    assert sum(remaining.values()) / len(remaining) <= 0.65, remaining

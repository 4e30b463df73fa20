"""The method works: a short CPU run on toy faces learns sliders that move held-out faces towards
their true counterfactual (the same face rendered with one attribute flipped). The faces are of the
"plain" toy style, one drawing convention, which a run this short learns; how the training recipe
fares on many styles, and on a held-out one, is research (benchmarks/toy_quality.py)."""

import torch

from fadercli import toyfaces
from fadercli.data import prepare
from fadercli.editor import Editor, compose
from fadercli.evaluate import to_tensor
from fadercli.train import TrainConfig, train
from fadercli.weights import load_model


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
    closer = {}
    for i, name in enumerate(toyfaces.ATTRIBUTES):
        target = estimate.clone()
        target[:, i] = 1 - labels[:, i]
        edited = compose(x, recon, editor.decode(features, target))
        truth = to_tensor(toyfaces.render(toyfaces.flipped(params, name), 32), cpu)
        error_after = (edited - truth).pow(2).flatten(1).mean(1)
        error_before = (x - truth).pow(2).flatten(1).mean(1)
        closer[name] = float((error_after < error_before).float().mean())
    assert min(closer.values()) >= 0.8, closer

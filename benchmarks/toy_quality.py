"""Quality of a run trained on toy faces, scored the way an outside judge would score it.

    python benchmarks/toy_quality.py RUN_DIR [RUN_DIR ...] [--judge FILE] [--faces 400]

An independent judge (a classifier of another architecture and seed than the run's own
evaluation classifier and the guide behind its classifier loss, trained on freshly rendered toy
faces, saved to --judge and reused; training it takes ~10 minutes on 2 cores) looks at held-out
faces edited as `fader edit --set NAME=<flipped> --no-align` edits them. Prints per attribute:

- swap: share of faces the judge sees with the attribute flipped after the edit;
- closer: share whose edit is closer (pixel MSE) to the exactly rendered counterfactual than the
  unedited face is;
and overall psnr (decode from the true labels, the paper's reconstruction) and psnr_edit (the
composed edit to the face's own labels, what `fader edit --set NAME=<label>` returns).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from fadercli import toyfaces
from fadercli.api import Fader
from fadercli.attributes import AttributeSet
from fadercli.editor import compose
from fadercli.evaluate import one_hot, predict, psnr, to_tensor, train_classifiers
from fadercli.model import Classifier, ClassifierConfig
from fadercli.weights import load_model, save_model

JUDGE_SEED = 777  # faces the judge learns from: neither the runs' training set nor the test faces
TEST_SEED = 4242


def judge(path: Path, size: int, steps: int = 1500) -> Classifier:
    attributes = AttributeSet.binary(list(toyfaces.ATTRIBUTES))
    if path.is_file():
        return load_model(path, kind="classifier").model.eval()
    torch.manual_seed(JUDGE_SEED)
    config = ClassifierConfig(attributes.pairs(), img_size=size, init_fm=32, max_fm=256, hid_dim=256, dropout=0.3)

    def batches(step: int):
        params = toyfaces.sample(64, seed=JUDGE_SEED * 100_000 + step)
        return to_tensor(toyfaces.render(params, size), torch.device("cpu")), torch.from_numpy(toyfaces.labels(params))

    clf = train_classifiers(attributes, [(config, 0.05)], batches, steps=steps, device=torch.device("cpu"))[0]
    save_model(path, clf)
    return clf


@torch.no_grad()
def score(run: Path, clf: Classifier, n: int) -> dict:
    fader = Fader.load(str(run), quiet=True, device="cpu")
    model = fader.models[0]
    editor = model.editor
    attributes, size = editor.attributes, model.size
    params = toyfaces.sample(n, seed=TEST_SEED)
    x = to_tensor(toyfaces.render(params, size), torch.device("cpu"))
    y = torch.from_numpy(toyfaces.labels(params))
    features, estimate, recon = editor.analyse(x)
    result = {"psnr": float(psnr(editor.decode(features, y.float()), x).mean())}
    own = compose(x, recon, editor.decode(features, y.float()))
    result["psnr_edit"] = float(psnr(own, x).mean())
    for i, name in enumerate(attributes.names):
        target = estimate.clone()
        target[:, i] = 1 - y[:, i].float()
        edited = compose(x, recon, editor.decode(features, target))
        flipped = predict(attributes, clf(edited))[:, i] == (1 - y[:, i])
        truth = to_tensor(toyfaces.render(toyfaces.flipped(params, name), size), torch.device("cpu"))
        closer = (edited - truth).pow(2).flatten(1).mean(1) < (x - truth).pow(2).flatten(1).mean(1)
        result[name] = {
            "swap": round(float(flipped.float().mean()), 3),
            "swap_add": round(float(flipped[y[:, i] == 0].float().mean()), 3),
            "swap_remove": round(float(flipped[y[:, i] == 1].float().mean()), 3),
            "closer": round(float(closer.float().mean()), 3),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--judge", type=Path, default=Path("judge64.safetensors"))
    parser.add_argument("--faces", type=int, default=400)
    args = parser.parse_args()
    sizes = {Fader.load(str(r), quiet=True, device="cpu").models[0].size for r in args.runs}
    if len(sizes) != 1:
        parser.error("runs of one image size at a time (the judge sees one size)")
    clf = judge(args.judge, sizes.pop())
    for run in args.runs:
        result = score(run, clf, args.faces)
        print(json.dumps({"run": str(run), **result}))
        names = toyfaces.ATTRIBUTES
        print(f"{run}: psnr {result['psnr']:.2f}  psnr_edit {result['psnr_edit']:.2f}")
        for key in ("swap", "swap_add", "swap_remove", "closer"):
            print(f"  {key:12s}" + "  ".join(f"{n} {result[n][key]:.3f}" for n in names))


if __name__ == "__main__":
    main()

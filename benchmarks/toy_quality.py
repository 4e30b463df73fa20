"""Quality of a run trained on toy faces, scored the way an outside judge would score it.

    python benchmarks/toy_quality.py RUN_DIR [RUN_DIR ...] --style STYLE [--judges DIR] [--faces 400]

An independent judge per toy style and size (a classifier of another architecture and seed than
the runs' own evaluation classifier and guide, trained on 24,000 faces of the style rendered for
it alone, saved under --judges and reused; about ten minutes to train on 2 cores) looks at held-out
faces of that style edited as `fader edit --set NAME=<flipped> --no-align` edits them. Its own
accuracy on the unedited test faces is printed first: a judge below 99.5% is not worth reading.
Per attribute the run edits, and per direction (adding: faces without it, set to 1; removing:
faces with it, set to 0):

- swap: share of faces the judge sees with the attribute flipped after the composed edit;
- dec: the same for the bare decode from the true labels (the paper's measure);
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
from fadercli.evaluate import predict, psnr, to_tensor, train_classifiers
from fadercli.model import Classifier, ClassifierConfig
from fadercli.weights import load_model, save_model

JUDGE_SEED = 777  # faces the judge learns from: neither the runs' training set nor the test faces
TEST_SEED = 4242
CPU = torch.device("cpu")
ALL = AttributeSet.binary(list(toyfaces.ATTRIBUTES))


def judge(folder: Path, style: str, size: int, steps: int = 2000, pool: int = 24_000) -> Classifier:
    path = folder / f"judge_{style}_{size}.safetensors"
    if path.is_file():
        return load_model(path, kind="classifier").model.eval()
    torch.manual_seed(JUDGE_SEED)
    params = toyfaces.sample(pool, seed=JUDGE_SEED, style=style)
    images = np.concatenate([toyfaces.render({k: v[i : i + 512] for k, v in params.items()}, size) for i in range(0, pool, 512)])
    labels = torch.from_numpy(toyfaces.labels(params))
    rng = np.random.default_rng(JUDGE_SEED)
    config = ClassifierConfig(ALL.pairs(), img_size=size, init_fm=24, max_fm=192, hid_dim=192, dropout=0.2)

    def batches(step: int):
        rows = rng.integers(0, pool, 64)
        return to_tensor(images[rows], CPU, rng.random(64) < 0.5), labels[rows]

    clf = train_classifiers(ALL, [(config, 0.03)], batches, steps=steps, device=CPU, lr=3e-3)[0]
    folder.mkdir(parents=True, exist_ok=True)
    save_model(path, clf)
    return clf


def rate(mask: torch.Tensor, where: torch.Tensor) -> float:
    return round(float(mask[where].float().mean()), 3) if where.any() else float("nan")


@torch.no_grad()
def score(run: Path, clf: Classifier, style: str, n: int) -> dict:
    fader = Fader.load(str(run), quiet=True, device="cpu")
    editor = fader.models[0].editor
    attributes, size = editor.attributes, fader.models[0].size
    params = toyfaces.sample(n, seed=TEST_SEED, style=style)
    x = to_tensor(toyfaces.render(params, size), CPU)
    columns = [toyfaces.ATTRIBUTES.index(name) for name in attributes.names]
    y_all = torch.from_numpy(toyfaces.labels(params))
    y = y_all[:, columns]
    features, estimate, recon = editor.analyse(x)
    result = {"judge_accuracy": dict(zip(ALL.names, (predict(ALL, clf(x)) == y_all).float().mean(0).tolist()))}
    result["psnr"] = float(psnr(editor.decode(features, y.float()), x).mean())
    result["psnr_edit"] = float(psnr(compose(x, recon, editor.decode(features, y.float())), x).mean())
    for i, name in enumerate(attributes.names):
        j = columns[i]
        target = estimate.clone()
        target[:, i] = 1 - y[:, i].float()
        edited = compose(x, recon, editor.decode(features, target))
        exact = y.float().clone()
        exact[:, i] = 1 - exact[:, i]
        decoded = editor.decode(features, exact)
        flipped = predict(ALL, clf(edited))[:, j] == (1 - y[:, i])
        flipped_dec = predict(ALL, clf(decoded))[:, j] == (1 - y[:, i])
        truth = to_tensor(toyfaces.render(toyfaces.flipped(params, name), size), CPU)
        closer = (edited - truth).pow(2).flatten(1).mean(1) < (x - truth).pow(2).flatten(1).mean(1)
        add, remove = y[:, i] == 0, y[:, i] == 1
        result[name] = {
            "swap_add": rate(flipped, add), "swap_remove": rate(flipped, remove),
            "dec_add": rate(flipped_dec, add), "dec_remove": rate(flipped_dec, remove),
            "closer": rate(closer, torch.ones_like(closer)),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--style", required=True, choices=list(toyfaces.STYLES))
    parser.add_argument("--judges", type=Path, default=Path("judges"))
    parser.add_argument("--faces", type=int, default=400)
    args = parser.parse_args()
    sizes = {Fader.load(str(r), quiet=True, device="cpu").models[0].size for r in args.runs}
    if len(sizes) != 1:
        parser.error("runs of one image size at a time (the judge sees one size)")
    clf = judge(args.judges, args.style, sizes.pop())
    for run in args.runs:
        result = score(run, clf, args.style, args.faces)
        print(json.dumps({"run": str(run), "style": args.style, **result}))
        names = [n for n in toyfaces.ATTRIBUTES if n in result]
        accuracy = "  ".join(f"{n} {a:.3f}" for n, a in result["judge_accuracy"].items())
        print(f"{run} ({args.style}): psnr {result['psnr']:.2f}  psnr_edit {result['psnr_edit']:.2f}  judge {accuracy}")
        for key in ("swap_add", "swap_remove", "dec_add", "dec_remove", "closer"):
            print(f"  {key:12s}" + "  ".join(f"{n} {result[n][key]:.3f}" for n in names))


if __name__ == "__main__":
    main()

"""Quality of a run trained on toy faces, scored the way an outside judge would score it.

    python benchmarks/toy_quality.py RUN_DIR [RUN_DIR ...] --style STYLE [--judges DIR] [--faces 400]
    python benchmarks/toy_quality.py RUN_DIR ... --style portraits     # the second, independent renderer

STYLE is a style of fadercli/toyfaces.py, or `portraits` for benchmarks/portraits.py, a renderer
written apart and never tuned on (train the run on `python benchmarks/portraits.py DIR` first).
An independent judge per style and size (a classifier of another architecture and seed than
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
- gain: how much closer, in dB, the edit comes to the exact counterfactual than doing nothing
  (mean of PSNR(edit, truth) - PSNR(face, truth)); negative: the edit moves away from the truth;
and overall psnr (decode from the true labels, the paper's reconstruction) and psnr_edit (the
composed edit to the face's own labels, what `fader edit --set NAME=<label>` returns).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import portraits
import torch

from fadercli.api import Fader
from fadercli.attributes import AttributeSet
from fadercli.net.editor import compose
from fadercli.net.model import Classifier, ClassifierConfig
from fadercli.net.tensors import from_uint8 as to_tensor
from fadercli.train import toyfaces
from fadercli.train.evaluate import predict, psnr, train_classifiers
from fadercli.weights.format import load_model, save_model

JUDGE_SEED = 777  # faces the judge learns from: neither the runs' training set nor the test faces
TEST_SEED = 4242
CPU = torch.device("cpu")


class Renderer:
    """A style of toyfaces, or the portraits renderer, behind one interface."""

    def __init__(self, style: str):
        self.style = style
        self.module = portraits if style == "portraits" else toyfaces
        self.names = list(self.module.ATTRIBUTES)

    def sample(self, n: int, seed: int) -> dict:
        if self.module is portraits:
            return portraits.sample(n, seed)
        return toyfaces.sample(n, seed=seed, style=self.style)

    def render(self, params: dict, size: int) -> np.ndarray:
        n = len(next(iter(params.values())))
        return np.concatenate(
            [self.module.render({k: v[i : i + 512] for k, v in params.items()}, size) for i in range(0, n, 512)]
        )


def judge(folder: Path, renderer: Renderer, size: int, steps: int = 2000, pool: int = 24_000) -> Classifier:
    path = folder / f"judge_{renderer.style}_{size}.safetensors"
    every = AttributeSet.binary(renderer.names)
    if path.is_file():
        return load_model(path, kind="classifier").model.eval()
    torch.manual_seed(JUDGE_SEED)
    params = renderer.sample(pool, JUDGE_SEED)
    images = renderer.render(params, size)
    labels = torch.from_numpy(renderer.module.labels(params))
    rng = np.random.default_rng(JUDGE_SEED)
    config = ClassifierConfig(every.pairs(), img_size=size, init_fm=24, max_fm=192, hid_dim=192, dropout=0.2)

    def batches(step: int):
        rows = rng.integers(0, pool, 64)
        return to_tensor(images[rows], CPU, rng.random(64) < 0.5), labels[rows]

    clf = train_classifiers(every, [(config, 0.03)], batches, steps=steps, device=CPU, lr=3e-3)[0][0]
    folder.mkdir(parents=True, exist_ok=True)
    save_model(path, clf)
    return clf


def rate(mask: torch.Tensor, where: torch.Tensor) -> float:
    return round(float(mask[where].float().mean()), 3) if where.any() else float("nan")


@torch.no_grad()
def score(run: Path, clf: Classifier, renderer: Renderer, n: int) -> dict:
    fader = Fader.load(str(run), quiet=True, device="cpu")
    editor = fader.models[0].editor
    attributes, size = editor.attributes, fader.models[0].size
    every = AttributeSet.binary(renderer.names)
    params = renderer.sample(n, TEST_SEED)
    x = to_tensor(renderer.render(params, size), CPU)
    columns = [renderer.names.index(name) for name in attributes.names]
    y_all = torch.from_numpy(renderer.module.labels(params))
    y = y_all[:, columns]
    features, estimate, recon = editor.analyse(x)
    result = {"judge_accuracy": dict(zip(every.names, (predict(every, clf(x)) == y_all).float().mean(0).tolist()))}
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
        flipped = predict(every, clf(edited))[:, j] == (1 - y[:, i])
        flipped_dec = predict(every, clf(decoded))[:, j] == (1 - y[:, i])
        truth = to_tensor(renderer.render(renderer.module.flipped(params, name), size), CPU)
        closer = (edited - truth).pow(2).flatten(1).mean(1) < (x - truth).pow(2).flatten(1).mean(1)
        gain = psnr(edited, truth) - psnr(x, truth)
        add, remove = y[:, i] == 0, y[:, i] == 1
        result[name] = {
            "swap_add": rate(flipped, add),
            "swap_remove": rate(flipped, remove),
            "dec_add": rate(flipped_dec, add),
            "dec_remove": rate(flipped_dec, remove),
            "closer": rate(closer, torch.ones_like(closer)),
            "gain_add": round(float(gain[add].mean()), 2),
            "gain_remove": round(float(gain[remove].mean()), 2),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--style", required=True, choices=[*toyfaces.STYLES, "portraits"])
    parser.add_argument("--judges", type=Path, default=Path("judges"))
    parser.add_argument("--faces", type=int, default=400)
    args = parser.parse_args()
    sizes = {Fader.load(str(r), quiet=True, device="cpu").models[0].size for r in args.runs}
    if len(sizes) != 1:
        parser.error("runs of one image size at a time (the judge sees one size)")
    renderer = Renderer(args.style)
    clf = judge(args.judges, renderer, sizes.pop())
    for run in args.runs:
        result = score(run, clf, renderer, args.faces)
        print(json.dumps({"run": str(run), "style": args.style, **result}))
        names = [n for n in renderer.names if n in result]
        accuracy = "  ".join(f"{n} {a:.3f}" for n, a in result["judge_accuracy"].items())
        print(f"{run} ({args.style}): psnr {result['psnr']:.2f}  psnr_edit {result['psnr_edit']:.2f}  judge {accuracy}")
        for key in ("swap_add", "swap_remove", "dec_add", "dec_remove", "closer", "gain_add", "gain_remove"):
            print(f"  {key:12s}" + "  ".join(f"{n} {result[n][key]:.3f}" for n in names))
        gains = [result[n][k] for n in names for k in ("gain_add", "gain_remove")]
        print(f"  gain over doing nothing: mean {np.mean(gains):+.2f} dB, worst {min(gains):+.2f} dB")


if __name__ == "__main__":
    main()

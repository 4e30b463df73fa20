"""Quality of a run trained on toy faces, scored the way an outside judge would score it.

    python benchmarks/toy_quality.py RUN_DIR [RUN_DIR ...] --style STYLE [--judges DIR] [--faces 400]
    python benchmarks/toy_quality.py RUN_DIR ... --style portraits     # the second, independent renderer

STYLE is a style of fadercli/toyfaces.py, or `portraits` for benchmarks/portraits.py, a renderer
written apart and never tuned on (train the run on `python benchmarks/portraits.py DIR` first).
Two independent judges per style and size, of unlike designs, each trained on 24,000 faces of the
style rendered for it alone (saved under --judges and reused; about ten minutes each to train on
2 cores): A, fader's classifier architecture at another width and seed than the runs' own
evaluation classifier and guide (strided 4x4 convolutions down to 1x1, input noise); B, a
different network (3x3 convolutions with max pooling, global average pooling, trained with shifts
and changes of brightness and contrast). They look at held-out faces of that style edited as
`fader edit --set NAME=<flipped> --no-align` edits them (at --precision, fp32 by default). Their
own accuracy on the unedited test faces is printed first: a judge below 99.5% is not worth reading.
Two judges that agree on real faces can disagree on edits, which are outside what either learnt
from: where they do, look at the edits. Per attribute the run edits, and per direction (adding:
faces without it, set to 1; removing: faces with it, set to 0):

- swap (swap_b): share of faces judge A (B) sees with the attribute flipped after the composed edit;
- dec (dec_b): the same for the bare decode from the true labels (the paper's measure);
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
import torch.nn.functional as F
from torch import nn

from fadercli.api import Fader
from fadercli.attributes import AttributeSet
from fadercli.net.editor import compose
from fadercli.net.model import Classifier, ClassifierConfig
from fadercli.net.tensors import from_uint8 as to_tensor
from fadercli.train import toyfaces
from fadercli.train.classifiers import predict, train_classifiers
from fadercli.train.evaluate import psnr
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

    clf = train_classifiers(every, [(config, 0.03, None)], batches, steps=steps, device=CPU, lr=3e-3)[0][0]
    folder.mkdir(parents=True, exist_ok=True)
    save_model(path, clf)
    return clf


class JudgeB(nn.Module):
    """Judge B: 3x3 convolutions, batch norm and max pooling, then global average pooling; nothing
    like the strided 4x4 stacks of fader's classifiers. Logits: two per attribute, as predict reads them."""

    def __init__(self, n_attributes: int, width: int = 32):
        super().__init__()
        # a 3x3 stride-2 stem first: full-resolution 3x3 stages cost 20 minutes of training on 2 cores
        layers, channels = [nn.Conv2d(3, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)], width
        for out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            layers += [nn.Conv2d(out, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 2 * n_attributes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def judge_b(folder: Path, renderer: Renderer, size: int, steps: int = 2000, pool: int = 24_000) -> JudgeB:
    path = folder / f"judge_b_{renderer.style}_{size}.pt"
    every = AttributeSet.binary(renderer.names)
    model = JudgeB(len(every))
    if path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    seed = JUDGE_SEED + 1
    torch.manual_seed(seed)
    params = renderer.sample(pool, seed)
    images = renderer.render(params, size)
    labels = torch.from_numpy(renderer.module.labels(params))
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    model.train()
    for _ in range(steps):
        rows = rng.integers(0, pool, 64)
        x = to_tensor(images[rows], CPU, rng.random(64) < 0.5)
        dy, dx = rng.integers(-2, 3, 2)
        x = torch.roll(x, (int(dy), int(dx)), (2, 3))
        gain = torch.empty(64, 1, 1, 1).uniform_(0.7, 1.2)
        shift = torch.empty(64, 1, 1, 1).uniform_(-0.15, 0.15)
        x = ((x - x.mean((1, 2, 3), keepdim=True)) * gain + x.mean((1, 2, 3), keepdim=True) + shift).clamp(-1, 1)
        logits = model(x).view(64, -1, 2)
        loss = F.cross_entropy(logits.reshape(-1, 2), labels[rows].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval()


def rate(mask: torch.Tensor, where: torch.Tensor) -> float:
    return round(float(mask[where].float().mean()), 3) if where.any() else float("nan")


@torch.no_grad()
def score(run: Path, clf: Classifier, clf_b: JudgeB, renderer: Renderer, n: int, precision: str = "fp32") -> dict:
    fader = Fader.load(str(run), quiet=True, device="cpu", precision=precision)
    editor = fader.models[0].editor
    attributes, size = editor.attributes, fader.models[0].size
    every = AttributeSet.binary(renderer.names)
    params = renderer.sample(n, TEST_SEED)
    x = to_tensor(renderer.render(params, size), CPU)
    columns = [renderer.names.index(name) for name in attributes.names]
    y_all = torch.from_numpy(renderer.module.labels(params))
    y = y_all[:, columns]
    features, estimate, recon = editor.analyse(x)
    result = {
        "judge_accuracy": dict(zip(every.names, (predict(every, clf(x)) == y_all).float().mean(0).tolist())),
        "judge_b_accuracy": dict(zip(every.names, (predict(every, clf_b(x)) == y_all).float().mean(0).tolist())),
    }
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
        flipped_b = predict(every, clf_b(edited))[:, j] == (1 - y[:, i])
        flipped_dec = predict(every, clf(decoded))[:, j] == (1 - y[:, i])
        flipped_dec_b = predict(every, clf_b(decoded))[:, j] == (1 - y[:, i])
        truth = to_tensor(renderer.render(renderer.module.flipped(params, name), size), CPU)
        closer = (edited - truth).pow(2).flatten(1).mean(1) < (x - truth).pow(2).flatten(1).mean(1)
        gain = psnr(edited, truth) - psnr(x, truth)
        add, remove = y[:, i] == 0, y[:, i] == 1
        result[name] = {
            "swap_add": rate(flipped, add),
            "swap_remove": rate(flipped, remove),
            "swap_b_add": rate(flipped_b, add),
            "swap_b_remove": rate(flipped_b, remove),
            "dec_add": rate(flipped_dec, add),
            "dec_remove": rate(flipped_dec, remove),
            "dec_b_add": rate(flipped_dec_b, add),
            "dec_b_remove": rate(flipped_dec_b, remove),
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
    parser.add_argument("--precision", default="fp32", help="the edits' arithmetic (fader edit --precision)")
    args = parser.parse_args()
    sizes = {Fader.load(str(r), quiet=True, device="cpu").models[0].size for r in args.runs}
    if len(sizes) != 1:
        parser.error("runs of one image size at a time (the judge sees one size)")
    renderer = Renderer(args.style)
    size = sizes.pop()
    clf, clf_b = judge(args.judges, renderer, size), judge_b(args.judges, renderer, size)
    for run in args.runs:
        result = score(run, clf, clf_b, renderer, args.faces, args.precision)
        print(json.dumps({"run": str(run), "style": args.style, **result}))
        names = [n for n in renderer.names if n in result]
        accuracy = "  ".join(f"{n} {a:.3f}" for n, a in result["judge_accuracy"].items())
        accuracy_b = "  ".join(f"{n} {a:.3f}" for n, a in result["judge_b_accuracy"].items())
        print(f"{run} ({args.style}): psnr {result['psnr']:.2f}  psnr_edit {result['psnr_edit']:.2f}")
        print(f"  judges on unedited faces: A {accuracy}; B {accuracy_b}")
        keys = ("swap_add", "swap_remove", "swap_b_add", "swap_b_remove", "dec_add", "dec_remove", "dec_b_add")
        keys += ("dec_b_remove", "closer")
        for key in (*keys, "gain_add", "gain_remove"):
            print(f"  {key:12s}" + "  ".join(f"{n} {result[n][key]:.3f}" for n in names))
        gains = [result[n][k] for n in names for k in ("gain_add", "gain_remove")]
        print(f"  gain over doing nothing: mean {np.mean(gains):+.2f} dB, worst {min(gains):+.2f} dB")


if __name__ == "__main__":
    main()

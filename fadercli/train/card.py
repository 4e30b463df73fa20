"""A run's model card: README.md with the Hugging Face Hub's YAML metadata, written into the run
folder at the end of every run and into the folder `fader export` and `fader push` make.

Every figure comes from the run's own files: attributes and slider ranges from model.safetensors,
the evaluation from the latest one in metrics.jsonl, the data and the command from run.json.
"""

from __future__ import annotations

import json
from pathlib import Path

from fadercli import __version__
from fadercli.files import atomic_path
from fadercli.train.evaluate import RELIABLE_ACCURACY, margin, percent, sharpness_text
from fadercli.train.metrics import last_evaluation
from fadercli.weights.format import load_model
from fadercli.weights.registry import MODEL_FILE

CARD_FILE = "README.md"
PREVIEW_FILE = "preview.png"
DOCS = "https://github.com/fadercli/fader/blob/main/docs"  # the project's documentation, as pyproject names it
TAGS = ("fader-networks", "face-editing", "image-to-image", "pytorch", "fadercli")


def model_card(
    run: Path, repo_id: str | None = None, license: str = "other", preview: bool = False, onnx: bool = False
) -> str:
    """The card's text for a run folder; `repo_id` (OWNER/NAME) for the usage lines, `preview` when a
    preview.png sits beside it, `onnx` when its ONNX export does (`fader export RUN --format onnx`)."""
    run = Path(run)
    loaded = load_model(run / MODEL_FILE, kind="fader")
    info = _run_info(run)
    evaluation = last_evaluation(run) if (run / "metrics.jsonl").is_file() else None
    report = (evaluation or {}).get("eval") or loaded.training.get("evaluation") or {}
    attributes = loaded.attributes.names
    meta = {
        "attributes": attributes,
        "img_size": loaded.config.img_size,
        "slider_ranges": {k: list(v) for k, v in loaded.slider_ranges.items()},
        "steps": loaded.training.get("steps"),
        "psnr": report.get("psnr"),
        "swap_accuracy": report.get("swap_accuracy"),
        "classifier_accuracy": report.get("classifier_accuracy"),
        "reliable": {a: acc >= RELIABLE_ACCURACY for a, acc in (report.get("classifier_accuracy") or {}).items()},
    }
    spec = f"hf://{repo_id}" if repo_id else str(run)
    lines = [
        "---",
        f"license: {json.dumps(license)}",
        "library_name: fadercli",
        "pipeline_tag: image-to-image",
        f"tags: {json.dumps([*TAGS, *(a.lower() for a in attributes)])}",
        f"fader: {json.dumps(meta)}",
        "---",
        "",
        f"# {repo_id.split('/')[-1] if repo_id else run.resolve().name}",
        "",
        f"A Fader Network (Lample et al., NIPS 2017) that edits {_words(attributes)} on aligned"
        f" {loaded.config.img_size} px faces, trained with fader {__version__}.",
        "",
        *(
            [f"![Validation faces: original, reconstruction, then each attribute flipped]({PREVIEW_FILE})", ""]
            if preview
            else []
        ),
        "## Use",
        "",
        "```bash",
        'pip install "fadercli[hub]"',
        f"fader edit photo.jpg --model {spec} --set {attributes[0]}=1",
        f"fader sweep photo.jpg --model {spec} --attr {attributes[0]} -o sweep.gif",
        "```",
        "",
        "| attribute | slider range | share with it (train / validation) |",
        "| --- | --- | --- |",
    ]
    shares = info.get("dataset", {}).get("with", {})
    for name in attributes:
        low, high = loaded.slider_ranges[name]
        with_ = shares.get(name, {})
        lines.append(
            f"| {name} | {low:g} to {high:g} | {percent(with_.get('train'))} / {percent(with_.get('validation'))} |"
        )
    lines += ["", *(_onnx(attributes[0]) if onnx else []), *_evaluation(report, evaluation)]
    lines += _training(info, loaded.training)
    return "\n".join(lines) + "\n"


def write_card(run: Path, dest: Path, **options) -> Path:
    """Write the card for `run` to `dest` (a file), whole or not at all."""
    with atomic_path(Path(dest)) as tmp:
        tmp.write_text(model_card(run, **options), encoding="utf-8")
    return Path(dest)


def _onnx(attribute: str) -> list[str]:
    """How to run the ONNX export that sits beside the weights (onnxrun.py; docs/models.md)."""
    stem = Path(MODEL_FILE).stem
    return [
        "## Without PyTorch: ONNX",
        "",
        f"`{stem}.analyse.onnx` and `{stem}.render.onnx` are this model as ONNX graphs (float32, any batch)"
        " that onnxruntime runs on a CPU, CUDA, or WebGPU in a browser; `analyse` finds each aligned"
        " face's own values and reconstruction, `render` draws the face at the values you give and composes the"
        f" edit. `{stem}.onnx.json` (also in each graph's metadata, key `fader`) holds their contract: the"
        " attributes and slider ranges, the image size and value range, the crop template, the paste-back mask."
        " To edit a photo with onnxruntime, OpenCV and numpy, without torch (download the three files first):",
        "",
        "```bash",
        "pip install --no-deps fadercli",
        'pip install onnxruntime numpy pillow opencv-python-headless "typer<0.29" rich platformdirs requests urllib3 filelock',
        f"fader edit photo.jpg --engine onnx --model {stem}.analyse.onnx --set {attribute}=1",
        "```",
        "",
        f"The files' contract, for a runner of your own: {DOCS}/models.md#onnx",
        "",
    ]


def _evaluation(report: dict, entry: dict | None) -> list[str]:
    if not report:
        return ["## Evaluation", "", "This run has not been evaluated (`fader eval RUN` does it).", ""]
    source = "`fader eval`" if (entry or {}).get("source") == "fader eval" else "the end of training"
    step = (entry or {}).get("step")
    psnr = report.get("psnr")
    lines = [
        "## Evaluation",
        "",
        f"Measured at {source}{f', step {step:,}' if step else ''}, on"
        f" {report.get('n_faces', '?')} validation faces the model never trained on.",
        "Reconstruction PSNR: "
        + ("not measured." if psnr is None else f"**{psnr:.2f} dB** (decoded at the true labels)."),
        "",
        "Swap accuracy: the share of validation faces that the run's evaluation classifier sees with the"
        " attribute changed after an edit changes it, counting only edits whose detail is that of real faces"
        " with that value; ± is the 95% margin. The classifier was trained on the same data: where it is"
        f" right on fewer than {RELIABLE_ACCURACY:.0%} of the clean faces its figures are NOT RELIABLE.",
        "",
        "| attribute | direction | swap accuracy | classifier alone | faces | sharpness | classifier right on clean faces |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, by in report.get("swap_accuracy", {}).items():
        accuracy = report["classifier_accuracy"][name]
        flag = "" if accuracy >= RELIABLE_ACCURACY else " (NOT RELIABLE)"
        for direction, share in by.items():
            faces = report["swap_faces"][name][direction]
            if not faces:
                row = "not measured: no validation face to edit | | 0 | "
            else:
                alone = report.get("swap_accuracy_classifier", {}).get(name, {}).get(direction)
                sharp = report.get("sharpness", {}).get(name, {}).get(direction)
                have = report.get("n_faces", faces) - faces  # the faces with the value it edits to
                row = f"{share:.1%} ±{margin(share, faces):.1%} | {percent(alone)} | {faces} | {sharpness_text(sharp, have)}"
            lines.append(f"| {name} | {direction} | {row} | {accuracy:.1%}{flag} |")
    warnings = report.get("warnings") or []
    if warnings:
        lines += ["", "Warnings from the evaluation:", "", *(f"- {w}" for w in warnings)]
    return [*lines, ""]


def _training(info: dict, training: dict) -> list[str]:
    dataset = info.get("dataset", {})
    lines = ["## Training", ""]
    if dataset:
        lines.append(
            f"Data: {dataset.get('train', '?')} training and {dataset.get('validation', '?')} validation images."
        )
    if training.get("steps") is not None:
        lines.append(
            f"{training['steps']:,} steps of {training.get('batch_size', '?')} in {training.get('seconds', 0) / 60:.1f} minutes."
        )
    if info.get("command"):
        lines += ["", "```bash", info["command"], "```"]
    lines += [
        "",
        "## Limitations",
        "",
        "The model edits faces like those it was trained on, aligned as `fader edit` aligns them; on other"
        " faces, styles or attributes its edits may be faint, blurred or wrong. Check the evaluation above"
        " before relying on an attribute.",
    ]
    return lines


def _run_info(run: Path) -> dict:
    try:
        info = json.loads((run / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _words(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"

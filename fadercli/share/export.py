"""A run as a Hub-ready folder, and that folder uploaded to the Hugging Face Hub."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from fadercli.errors import InputError, ModelError, OutputError, UsageError, import_extra
from fadercli.files import atomic_path
from fadercli.train.card import CARD_FILE, PREVIEW_FILE, write_card
from fadercli.weights.registry import MODEL_FILE, RUN_CLASSIFIER

REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")


def check_repo_id(repo_id: str) -> str:
    if not REPO_ID.fullmatch(repo_id) or ".." in repo_id or repo_id.endswith((".git", ".")):
        raise UsageError(f"{repo_id!r} is not a Hub repository id: give OWNER/NAME")
    return repo_id


def export_run(run: Path, dest: Path, *, repo_id: str | None = None, license: str = "other", force: bool = False):
    """Write `dest` with the run's model.safetensors, its classifier.safetensors (when the run has one:
    edits then get estimates and `inspect` probabilities), its ONNX export (when `fader export RUN
    --format onnx` made one), README.md (the model card) and preview.png (the run's latest preview
    grid); the paths written. `dest` must be new or empty unless `force`."""
    run, dest = Path(run), Path(dest)
    if not (run / MODEL_FILE).is_file():
        raise InputError(f"{run}: no {MODEL_FILE} (not a finished training run)")
    if repo_id is not None:
        check_repo_id(repo_id)
    if dest.exists() and not dest.is_dir():
        raise OutputError(f"{dest} is a file")
    if dest.resolve() == run.resolve():
        raise UsageError("export into another folder than the run's own")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise OutputError(f"{dest} is not empty (use --force to write into it)")
    dest.mkdir(parents=True, exist_ok=True)
    sources = {MODEL_FILE: run / MODEL_FILE}
    if (run / RUN_CLASSIFIER).is_file():
        sources[RUN_CLASSIFIER] = run / RUN_CLASSIFIER
    onnx = _onnx_export(run)
    sources |= {path.name: path for path in onnx}
    preview = _latest_preview(run)
    if preview is not None:
        sources[PREVIEW_FILE] = preview
    written = []
    for name, source in sources.items():
        with atomic_path(dest / name) as tmp:
            shutil.copyfile(source, tmp)
        written.append(dest / name)
    card = write_card(
        run, dest / CARD_FILE, repo_id=repo_id, license=license, preview=preview is not None, onnx=bool(onnx)
    )
    return [*written, card]


def _onnx_export(run: Path) -> list[Path]:
    """The run's ONNX files (onnxrun.exported_paths), if it has an export; ModelError for one that is
    incomplete or was made from other weights than the run's model.safetensors (a run trained on)."""
    from fadercli.onnxrun import Contract, exported_paths
    from fadercli.weights.download import sha256_file

    paths = exported_paths(run, Path(MODEL_FILE).stem)
    present = [path for path in paths.values() if path.is_file()]
    if not present:
        return []
    again = f"export it again: fader export {run} --format onnx --force"
    if len(present) < len(paths):
        missing = next(path for path in paths.values() if not path.is_file())
        raise ModelError(f"{run}: its ONNX export is incomplete ({missing.name} is missing): {again}")
    contract = Contract.parse(paths["manifest"].read_text(encoding="utf-8"), str(paths["manifest"]))
    if contract.data["model"].get("sha256") != sha256_file(run / MODEL_FILE):
        raise ModelError(f"{run}: its ONNX export was made from other weights than its {MODEL_FILE}: {again}")
    return list(paths.values())


def _latest_preview(run: Path) -> Path | None:
    """previews/step_N.png with the largest N."""
    steps = []
    for path in (run / "previews").glob("step_*.png"):
        number = path.stem.removeprefix("step_")
        if number.isdigit():
            steps.append((int(number), path))
    return max(steps)[1] if steps else None


def push_run(
    run: Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    license: str = "other",
    token: str | None = None,
) -> str:
    """Export the run to a temporary folder and upload it as one commit to the model repository
    `repo_id` (created if missing; `revision` a branch, created if missing); the commit's URL.
    The token comes from `token`, HF_TOKEN or `hf auth login`."""
    check_repo_id(repo_id)
    import_extra("huggingface_hub", "hub")
    from huggingface_hub import HfApi

    from fadercli.weights.hf import hub_errors

    with tempfile.TemporaryDirectory(prefix="fader-push-") as folder:
        export_run(run, Path(folder), repo_id=repo_id, license=license)
        api = HfApi(token=token)
        with hub_errors(f"hf://{repo_id}", uploading=True):
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if revision:
                api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                repo_type="model",
                revision=revision,
                commit_message=f"fader push: {Path(run).resolve().name}",
            )
    return str(getattr(commit, "commit_url", commit))

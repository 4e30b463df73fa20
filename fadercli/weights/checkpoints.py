"""Training checkpoints (checkpoint.pt, torch.save's zip format): read with
torch.load(weights_only=True) after the archive is checked, so a hostile file neither runs code nor
inflates; `--model RUN/checkpoint.pt` loads the autoencoder inside one."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from fadercli.attributes import AttributeSet
from fadercli.errors import ModelError, reason
from fadercli.net.model import FaderConfig
from fadercli.weights.format import LoadedModel, build_from_tensors, default_slider_ranges, require_kind

CHECKPOINT_VERSION = 1


def _check_archive(path: Path) -> None:
    """A checkpoint is a zip of uncompressed records (torch.save's format): one whose records are
    compressed, or claim more bytes than the file holds, could inflate to any size when loaded."""
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ModelError(f"{path}: not a readable checkpoint ({e})") from None
    size = path.stat().st_size
    if any(r.compress_type != zipfile.ZIP_STORED for r in records) or sum(r.file_size for r in records) > size:
        raise ModelError(f"{path}: not a checkpoint torch.save wrote (compressed or oversized records)")


def load_checkpoint(path: Path) -> dict:
    """A checkpoint.pt, read without unpickling anything but tensors and plain containers, its
    model config and autoencoder checked (a ModelError line for anything else); the training config
    is checked by the training loop that resumes it."""
    _check_archive(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt zip, truncated file, forbidden global: all mean "unusable"
        raise ModelError(f"{path}: not a readable checkpoint ({type(e).__name__}: {reason(e)})") from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise ModelError(f"{path}: not a fader training checkpoint (version {CHECKPOINT_VERSION})")
    try:
        FaderConfig.from_dict(state["model_config"])
        if not isinstance(state["config"], dict):
            raise ValueError("its training config is not a mapping")
        if not isinstance(state["ae"], dict) or not all(isinstance(k, str) for k in state["ae"]):
            raise ValueError("its autoencoder is not a state dict")
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{path}: a damaged checkpoint ({type(e).__name__}: {str(e)[:200]})") from None
    return state


def load_checkpoint_model(path: Path, kind: str | None = None) -> LoadedModel:
    """The autoencoder of a training checkpoint, for `--model RUN/checkpoint.pt`."""
    state = load_checkpoint(path)
    require_kind(str(path), "fader", kind)
    config = FaderConfig.from_dict(state["model_config"])
    model = build_from_tensors("fader", config, state["ae"], str(path))
    training = {"steps": state.get("step"), "source": "training checkpoint"}
    return LoadedModel(
        "fader", model, config, default_slider_ranges(AttributeSet.from_pairs(config.attributes)), training, Path(path)
    )

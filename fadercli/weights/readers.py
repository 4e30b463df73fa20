"""The one place a model file's suffix picks its reader; each reader is imported only when needed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fadercli.errors import ModelError

if TYPE_CHECKING:
    from fadercli.weights.format import LoadedModel

READERS = (".safetensors", ".pth", ".pt")


def load_file(path: Path, kind: str | None = None) -> LoadedModel:
    """A local model file (ours, the authors' .pth, a training checkpoint.pt) as a checked model in memory;
    `kind` ("fader"/"classifier") if the caller needs one."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from fadercli.weights.format import load_model

        return load_model(path, kind)
    if suffix == ".pth":
        from fadercli.weights.authors import load_pth

        return load_pth(path, kind)
    if suffix == ".pt":
        from fadercli.weights.checkpoints import load_checkpoint_model

        return load_checkpoint_model(path, kind)
    if suffix == ".onnx":  # an export (or YuNet): only the onnx engine runs graphs
        raise ModelError(
            f"{path}: an ONNX model, which only --engine onnx runs (fader edit --engine onnx --model FILE)"
        )
    raise ModelError(f"{path}: not a model file fader reads (expected {' or '.join(READERS)})")

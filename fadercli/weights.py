"""Our release format: a .safetensors file with the model's tensors and metadata.

Metadata (all strings, as safetensors requires):
    format          "fadercli"
    format_version  "1"
    kind            "fader" (an AutoEncoder) or "classifier"
    config          JSON of the config dataclass (FaderConfig / ClassifierConfig)
    attributes      JSON list of attribute names, in decoder-channel order
    img_size        the model's square input size in pixels
    slider_ranges   JSON {attribute: [lo, hi]}: the recommended slider range
    training        JSON: how the model was made (data, steps, scores, source, licence)
    fadercli_version

Loading never unpickles, and checks every tensor against the config before building anything.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from fadercli import __version__
from fadercli.attributes import AttributeSet
from fadercli.errors import ModelError
from fadercli.files import atomic_path
from fadercli.model import AutoEncoder, Classifier, ClassifierConfig, FaderConfig

FORMAT = "fadercli"
FORMAT_VERSION = 1
KINDS: dict[str, tuple[type, type[nn.Module]]] = {
    "fader": (FaderConfig, AutoEncoder),
    "classifier": (ClassifierConfig, Classifier),
}
# Counters BatchNorm keeps for momentum=None; they carry no weights and old files lack them.
_OPTIONAL_SUFFIX = "num_batches_tracked"


@dataclass
class LoadedModel:
    """A model read from a weights file, with what its metadata says about it."""

    kind: str
    model: nn.Module
    config: FaderConfig | ClassifierConfig
    slider_ranges: dict[str, tuple[float, float]]
    training: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def attributes(self) -> AttributeSet:
        return AttributeSet.from_pairs(self.config.attributes)


def default_slider_ranges(attributes: AttributeSet) -> dict[str, tuple[float, float]]:
    """Binary: 0 (without) to 1 (with); categorical: the category indices."""
    return {a.name: (0.0, float(a.n_categories - 1)) for a in attributes}


def kind_of(model: nn.Module) -> str:
    for kind, (_, cls) in KINDS.items():
        if type(model) is cls:
            return kind
    raise TypeError(f"cannot save a {type(model).__name__}")


def save_model(
    path: str | os.PathLike,
    model: AutoEncoder | Classifier,
    *,
    slider_ranges: dict[str, tuple[float, float]] | None = None,
    training: dict | None = None,
) -> None:
    """Write `model` atomically in our format (float32 tensors, CPU)."""
    kind = kind_of(model)
    config = model.config
    attributes = AttributeSet.from_pairs(config.attributes)
    ranges = default_slider_ranges(attributes) | dict(slider_ranges or {})
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "kind": kind,
        "config": config.to_json(),
        "attributes": json.dumps(attributes.names),
        "img_size": str(config.img_size),
        "slider_ranges": json.dumps({k: [float(lo), float(hi)] for k, (lo, hi) in ranges.items()}),
        "training": json.dumps(training or {}, sort_keys=True),
        "fadercli_version": __version__,
    }
    tensors = {
        name: t.detach().to("cpu", copy=True).contiguous()
        for name, t in model.state_dict().items()
        if not name.endswith(_OPTIONAL_SUFFIX)
    }
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _read(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Metadata and tensors of a .safetensors file, or a ModelError saying why not."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise ModelError(f"{path}: a .safetensors file, but not a fader model (no fader metadata)")
            return metadata, {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError) as e:
        raise ModelError(f"{path}: not a readable weights file (truncated or corrupt: {e})") from None


def require_kind(where: str, found: str, wanted: str | None) -> None:
    """A ModelError unless `wanted` is None or `found`."""
    if wanted is not None and found != wanted:
        raise ModelError(f"{where}: this is a {found} model, a {wanted} model is needed here")


def build_from_tensors(
    kind: str, config, tensors: dict[str, torch.Tensor], where: str
) -> nn.Module:
    """A model of `kind` for `config` holding `tensors`, after checking names, shapes and values.

    Built on the meta device first, so a mismatched file costs no real allocation.
    """
    _, cls = KINDS[kind]
    with torch.device("meta"):
        model = cls(config)
    expected = model.state_dict()
    tensors = dict(tensors)
    for name, ref in expected.items():
        if name.endswith(_OPTIONAL_SUFFIX) and name not in tensors:
            tensors[name] = torch.zeros((), dtype=ref.dtype)
    missing = [n for n in expected if n not in tensors]
    unexpected = [n for n in tensors if n not in expected]
    if missing or unexpected:
        what = f"missing tensor {missing[0]}" if missing else f"unexpected tensor {unexpected[0]}"
        extra = len(missing) + len(unexpected) - 1
        more = f" (and {extra} more differences)" if extra else ""
        raise ModelError(f"{where}: tensors do not match the model config: {what}{more}")
    for name, ref in expected.items():
        t = tensors[name]
        if tuple(t.shape) != tuple(ref.shape):
            raise ModelError(
                f"{where}: tensor {name} has shape {tuple(t.shape)}, the config needs {tuple(ref.shape)}"
            )
        if t.is_floating_point() != ref.is_floating_point():
            raise ModelError(f"{where}: tensor {name} has dtype {t.dtype}, expected {ref.dtype}")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ModelError(f"{where}: tensor {name} holds NaN or infinite values")
    model.load_state_dict({n: tensors[n].to(ref.dtype) for n, ref in expected.items()}, assign=True)
    return model.eval()


def load_model(path: str | os.PathLike, kind: str | None = None) -> LoadedModel:
    """Read a weights file in our format; `kind` ("fader"/"classifier") if the caller needs one."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    metadata, tensors = _read(path)
    version = metadata.get("format_version", "?")
    if version != str(FORMAT_VERSION):
        raise ModelError(
            f"{path}: format version {version} is not supported by fadercli {__version__}"
            f" (reads version {FORMAT_VERSION}); upgrade fadercli"
        )
    file_kind = metadata.get("kind")
    if file_kind not in KINDS:
        raise ModelError(f"{path}: unknown model kind {file_kind!r}")
    require_kind(str(path), file_kind, kind)
    config_cls, _ = KINDS[file_kind]
    try:
        config = config_cls.from_dict(json.loads(metadata["config"]))
        ranges = {k: (float(lo), float(hi)) for k, (lo, hi) in json.loads(metadata["slider_ranges"]).items()}
        training = json.loads(metadata.get("training", "{}"))
    except (KeyError, ValueError, TypeError) as e:
        raise ModelError(f"{path}: invalid metadata ({e})") from None
    model = build_from_tensors(file_kind, config, tensors, str(path))
    attributes = AttributeSet.from_pairs(config.attributes)
    return LoadedModel(
        kind=file_kind,
        model=model,
        config=config,
        slider_ranges=default_slider_ranges(attributes) | ranges,
        training=training,
        path=path,
    )


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(learned parameters, running-statistics values), as the facts in FACTS.md count them."""
    params = sum(p.numel() for p in model.parameters())
    stats = sum(b.numel() for n, b in model.named_buffers() if not n.endswith(_OPTIONAL_SUFFIX))
    return params, stats


def describe(loaded: LoadedModel) -> dict:
    """What `fader info` shows: a JSON-ready summary of a loaded model."""
    params, stats = parameter_counts(loaded.model)
    return {
        "file": str(loaded.path) if loaded.path else None,
        "kind": loaded.kind,
        "attributes": [
            {"name": a.name, "categories": a.n_categories, "slider_range": list(loaded.slider_ranges[a.name])}
            for a in loaded.attributes
        ],
        "img_size": loaded.config.img_size,
        "parameters": params,
        "running_stats": stats,
        "config": loaded.config.to_dict(),
        "training": loaded.training,
    }

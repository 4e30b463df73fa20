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
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from fadercli import __version__
from fadercli.attributes import AttributeSet
from fadercli.errors import ModelError, OutputError
from fadercli.files import atomic_path
from fadercli.net.model import AutoEncoder, Classifier, ClassifierConfig, FaderConfig

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
    origin: str | None = None  # where it came from when the path does not say (hf://OWNER/NAME@COMMIT)

    @property
    def source(self) -> str | None:
        """What an edit's record names as its model: the Hub commit, else the file."""
        return self.origin or (str(self.path) if self.path is not None else None)

    @property
    def attributes(self) -> AttributeSet:
        return AttributeSet.from_pairs(self.config.attributes)


def default_slider_ranges(attributes: AttributeSet) -> dict[str, tuple[float, float]]:
    """The one policy for a model whose file says nothing else: the authors' convention, from 1 - max
    to max with max 2 for a binary attribute (exaggerated up to twice either way); a categorical
    attribute's category indices. A trained run, a model given in memory and a converted file agree."""
    return {a.name: (-1.0, 2.0) if a.binary else (0.0, float(a.n_categories - 1)) for a in attributes}


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
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except (OSError, SafetensorError) as e:  # a full disk, a quota, a file size limit
            raise OutputError(f"cannot write {path}: {_io_reason(e)}") from None


def _io_reason(error: Exception) -> str:
    """A write failure in a few words ("No space left on device"), from an OSError or safetensors'
    Rust error, which names the OS error by its number."""
    import re

    code = getattr(error, "errno", None)
    found = re.search(r"os error (\d+)", str(error))
    if code is None and found:
        code = int(found[1])
    return os.strerror(code) if code else (str(error).splitlines() or [type(error).__name__])[0][:200]


def _read(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Metadata and tensors of a .safetensors file, or a ModelError saying why not."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise ModelError(f"{path}: a .safetensors file, but not a fader model (no fader metadata)")
            return metadata, {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError) as e:
        raise ModelError(f"{path}: not a readable weights file (truncated or corrupt: {e})") from None


def require_kind(where: str, found: str, wanted: str | None) -> None:
    """A ModelError unless `wanted` is None or `found`."""
    if wanted is not None and found != wanted:
        raise ModelError(f"{where}: this is a {found} model, a {wanted} model is needed here")


def is_dense(size, stride) -> bool:
    """Whether a view of `size` with `stride` covers its elements once each, in some dimension order
    (row-major, channels-last ...): no stride 0, no overlap, no gaps. A dimension of 1 takes any stride."""
    if 0 in size:
        return True
    expected = 1
    for n, s in sorted(((n, s) for n, s in zip(size, stride) if n != 1), key=lambda p: (p[1], p[0])):
        if s != expected:
            return False
        expected *= n
    return True


def _check_memory(tensors: dict[str, torch.Tensor], where: str) -> None:
    """ModelError for a tensor that is not dense, or two that share memory: a file's few stored bytes
    must not stand for the gigabytes its tensors' shapes claim (each later copy would make them real)."""
    spans = []
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise ModelError(f"{where}: {name} is not a tensor")
        if not is_dense(t.shape, t.stride()):
            raise ModelError(f"{where}: tensor {name} is not dense in memory (a stride-0 or overlapping view)")
        if t.numel():
            start = t.data_ptr()
            spans.append((start, start + t.numel() * t.element_size(), name))
    spans.sort()
    for (_, end, name), (start, _, other) in zip(spans, spans[1:]):
        if start < end:
            raise ModelError(f"{where}: tensors {name} and {other} overlap in memory")


def build_from_tensors(kind: str, config, tensors: dict[str, torch.Tensor], where: str) -> nn.Module:
    """A model of `kind` for `config` holding `tensors`, after checking names, shapes, memory and values.

    Built on the meta device first, so a mismatched file costs no real allocation.
    """
    _check_memory(tensors, where)
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
            raise ModelError(f"{where}: tensor {name} has shape {tuple(t.shape)}, the config needs {tuple(ref.shape)}")
        if t.is_floating_point() != ref.is_floating_point():
            raise ModelError(f"{where}: tensor {name} has dtype {t.dtype}, expected {ref.dtype}")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ModelError(f"{where}: tensor {name} holds NaN or infinite values")
    model.load_state_dict({n: tensors[n].to(ref.dtype) for n, ref in expected.items()}, assign=True)
    return model.eval()


def _slider_ranges(data, attributes: AttributeSet) -> dict[str, tuple[float, float]]:
    """The metadata's {attribute: [lo, hi]}: each an attribute of the model, lo < hi, both finite."""
    if not isinstance(data, dict):
        raise ValueError("slider_ranges must be a JSON object {attribute: [lo, hi]}")
    ranges = {}
    for name, pair in data.items():
        if name not in attributes.names:
            raise ValueError(f"slider_ranges names {name!r}, which the model does not edit"[:200])
        if not (isinstance(pair, list) and len(pair) == 2 and all(type(v) in (int, float) for v in pair)):
            raise ValueError(f"the slider range of {name} must be [lo, hi]")
        lo, hi = float(pair[0]), float(pair[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"the slider range of {name} must be two finite numbers, lo < hi")
        ranges[name] = (lo, hi)
    return ranges


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
        attributes = AttributeSet.from_pairs(config.attributes)
        ranges = _slider_ranges(json.loads(metadata["slider_ranges"]), attributes)
        training = json.loads(metadata.get("training", "{}"))
        if not isinstance(training, dict):
            raise ValueError("training must be a JSON object")
    except (KeyError, ValueError, TypeError) as e:
        raise ModelError(f"{path}: invalid metadata ({type(e).__name__}: {str(e)[:200]})") from None
    model = build_from_tensors(file_kind, config, tensors, str(path))
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

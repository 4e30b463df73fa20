"""The registry: named downloadable files (the authors' models and classifiers, YuNet) and your own
entries (registry.toml / registry.json in the fader home, or files named by $FADER_REGISTRY), and
the fader home folder itself ($FADER_HOME, else the per-user cache folder)."""

from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from fadercli.attributes import did_you_mean
from fadercli.errors import UsageError

if TYPE_CHECKING:
    from fadercli.weights.format import LoadedModel


MODEL_FILE = "model.safetensors"  # a model in the cache, and in a training run folder


# format -> the kind of model it holds: "fader", "classifier", None (as the file says), "detector".
FORMATS = {
    "authors-fader-pth": "fader",
    "authors-classifier-pth": "classifier",
    "authors-pth": None,
    "safetensors": None,
    "onnx": "detector",
}


BUILTIN = "built-in"


_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Entry:
    """One named downloadable file."""

    name: str
    urls: tuple[str, ...] = ()  # mirrors, tried in order
    format: str = "safetensors"  # a key of FORMATS
    sha256: str | None = None  # None: the first download's is recorded and enforced afterwards
    size: int | None = None  # bytes
    attribute: str | None = None  # the attribute a Fader model edits
    slider_range: tuple[float, float] | None = None  # recommended for that attribute
    licence: str = "unknown"
    description: str = ""
    notice: str | None = None  # shown on stderr whenever the file is downloaded
    origin: str = BUILTIN  # or the registry file that defines it

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name) or self.name.startswith("url-") and self.origin != "url":
            raise ValueError(f"invalid name {self.name!r}: use a-z, 0-9, '_', '.', '-' (not starting with url-)")
        if not self.urls or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in self.urls):
            raise ValueError("needs at least one http(s) URL")
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r} (known: {', '.join(FORMATS)})")
        for key in ("attribute", "licence", "description", "notice"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), str):
                raise ValueError(f"{key} must be a string")
        if self.sha256 is not None and not _SHA256.fullmatch(str(self.sha256)):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        if self.size is not None and (type(self.size) is not int or self.size <= 0):
            raise ValueError("size must be a positive whole number of bytes")
        if self.slider_range is not None:
            lo, hi = self.slider_range
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"slider_range must be two finite numbers, low < high, got {self.slider_range}")

    @property
    def kind(self) -> str | None:
        return FORMATS[self.format]

    @property
    def converted(self) -> bool:
        """Downloaded as the authors' .pth, kept as our .safetensors."""
        return self.format.startswith("authors-")

    @property
    def file_name(self) -> str:
        """The downloaded file's name in the entry's folder."""
        if self.format == "safetensors":
            return MODEL_FILE
        return f"{self.name}.onnx" if self.format == "onnx" else f"{self.name}.pth"

    @property
    def product_name(self) -> str:
        """The name of what fetch() returns, in the entry's folder."""
        return MODEL_FILE if self.converted else self.file_name


_AUTHORS_URL = "https://dl.fbaipublicfiles.com/FaderNetworks/{}.pth"


_AUTHORS_LICENCE = "CC-BY-NC 4.0"


_AUTHORS_NOTICE = (
    "the authors' pretrained Fader Networks weights are licensed CC-BY-NC 4.0 (non-commercial use only,"
    " https://creativecommons.org/licenses/by-nc/4.0/); fader downloads them for you from their site"
    " and never redistributes them"
)


# The authors' Fader models: name, attribute, their suggested slider maximum (range 1 - max .. max).
_AUTHORS_FADER = (
    ("eyeglasses", "Eyeglasses", 2),
    ("male", "Male", 2),
    ("young", "Young", 10),
    ("narrow_eyes", "Narrow_Eyes", 10),
    ("pointy_nose", "Pointy_Nose", 10),
)


REGISTRY: tuple[Entry, ...] = (
    *(
        Entry(
            name,
            (_AUTHORS_URL.format(name),),
            "authors-fader-pth",
            attribute=attribute,
            slider_range=(1.0 - top, float(top)),
            licence=_AUTHORS_LICENCE,
            notice=_AUTHORS_NOTICE,
            description=f"the authors' Fader network for {attribute}",
        )
        for name, attribute, top in _AUTHORS_FADER
    ),
    Entry(
        "classifier256",
        (_AUTHORS_URL.format("classifier256"),),
        "authors-classifier-pth",
        licence=_AUTHORS_LICENCE,
        notice=_AUTHORS_NOTICE,
        description="the authors' attribute classifier (the 40 CelebA attributes, 256 px)",
    ),
    Entry(
        "yunet",
        (
            "https://github.com/opencv/opencv_zoo/raw/47534e27c9851bb1128ccc0102f1145e27f23f98"
            "/models/face_detection_yunet/face_detection_yunet_2026may.onnx",
        ),
        "onnx",
        sha256="ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
        size=229_738,
        licence="MIT",
        description="YuNet face detector (OpenCV Zoo, 2026may)",
    ),
)


def home() -> Path:
    """$FADER_HOME, else the per-user cache folder for fader."""
    custom = os.environ.get("FADER_HOME", "")
    if custom:
        return Path(custom).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("fader", appauthor=False))


def _models() -> Path:
    return home() / "models"


def registry_files() -> list[Path]:
    """The files user entries come from: registry.toml/.json in the home, then $FADER_REGISTRY."""
    files = [p for p in (home() / "registry.toml", home() / "registry.json") if p.is_file()]
    for name in os.environ.get("FADER_REGISTRY", "").split(os.pathsep):
        if name:
            path = Path(name).expanduser()
            if not path.is_file():
                raise UsageError(f"FADER_REGISTRY names {path}, which is not a file")
            files.append(path)
    return files


_USER_KEYS = {
    "url",
    "urls",
    "format",
    "sha256",
    "size",
    "attribute",
    "slider_range",
    "licence",
    "license",
    "description",
    "notice",
}


def _parse_registry(path: Path, base: dict[str, Entry]) -> list[Entry]:
    """The entries of one registry file; one named like an entry in `base` changes only what it sets."""
    try:
        if path.suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                import tomli as tomllib
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UsageError(f"registry file {path}: {e}") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise UsageError(
            f'registry file {path}: expected [models.NAME] tables (TOML) or {{"models": {{NAME: {{...}}}}}} (JSON)'
        )
    entries = []
    for name, spec in models.items():
        where = f"registry file {path}: model {name}"
        if not isinstance(spec, dict):
            raise UsageError(f"{where}: expected a table of settings")
        unknown = sorted(set(spec) - _USER_KEYS)
        if unknown:
            raise UsageError(f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(_USER_KEYS))})")
        settings = {k: v for k, v in spec.items() if k not in ("url", "urls", "license")}
        if "url" in spec or "urls" in spec:
            urls = spec.get("urls", [spec.get("url")])
            settings["urls"] = tuple(urls) if isinstance(urls, list) else ()
        if "license" in spec:
            settings.setdefault("licence", spec["license"])
        try:
            if isinstance(settings.get("sha256"), str):
                settings["sha256"] = settings["sha256"].lower()
            if "slider_range" in settings:
                settings["slider_range"] = tuple(float(v) for v in settings["slider_range"])
            settings["origin"] = str(path)
            entries.append(replace(base[name], **settings) if name in base else Entry(name=name, **settings))
        except (TypeError, ValueError) as e:
            raise UsageError(f"{where}: {e}") from None
    return entries


def registry() -> dict[str, Entry]:
    """Every registry entry by name: the built-in ones, then user entries (which may change them)."""
    entries = {e.name: e for e in REGISTRY}
    for path in registry_files():
        entries |= {e.name: e for e in _parse_registry(path, entries)}
    return entries


def model_for_attribute(attribute: str) -> str:
    """The registry model that edits `attribute` (case-insensitive); your own entries first."""
    editors = [e for e in registry().values() if e.attribute and e.kind in ("fader", None)]
    editors.sort(key=lambda e: e.origin == BUILTIN)  # stable: user entries, then built-in ones
    for entry in editors:
        if entry.attribute.lower() == attribute.lower():
            return entry.name
    options = ", ".join(f"{e.attribute} ({e.name})" for e in editors)
    hint = did_you_mean(attribute, [e.attribute for e in editors])
    raise UsageError(f"no model in the registry edits {attribute!r}; the registry has: {options}.{hint}")


RUN_CLASSIFIER = "classifier.safetensors"  # the evaluation classifier a training run writes beside its model


AUTHORS_CLASSIFIER = "classifier256"


def classifier_for(loaded: LoadedModel) -> str | None:
    """The classifier that can judge a Fader model's faces, as a `--model` spec: the one trained in the
    model's own run folder, or the authors' classifier for the authors' models (only their converter
    records `converted_from`); None if there is none."""
    if loaded.path is not None and (loaded.path.parent / RUN_CLASSIFIER).is_file():
        return str(loaded.path.parent / RUN_CLASSIFIER)
    if "converted_from" in loaded.training:
        return AUTHORS_CLASSIFIER
    return None

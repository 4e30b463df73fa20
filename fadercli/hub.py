"""Pretrained weights: the registry of named files, the cache, `--model` resolution.

The fader home is $FADER_HOME, else the per-user cache folder (platformdirs). Inside it:
    CACHEDIR.TAG                    tells backup tools to skip the folder
    registry.toml, registry.json    your own registry entries (README: "Your own models")
    models/<name>/                  a cached entry: model.safetensors for models, <name>.onnx ...
    models/<name>/<file>.part       an interrupted download; the next run resumes it
    models/<name>.sha256            the sha256 of the first download where none is published, recorded
                                    once the file converted or loaded; later downloads must match it
                                    (`fader models rm` removes it with the entry)
    locks/<name>.lock               one process fetches a name at a time (DDP ranks too)

A file appears under its final name only once its size and sha256 are checked (download.py).
The authors' .pth files are converted to model.safetensors on first use and the .pth is then
deleted. requests, torch and the converter are imported only where needed: `fader models list`
and downloads of non-model files stay light.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fadercli import env_flag, say
from fadercli.attributes import did_you_mean
from fadercli.download import Download, DownloadSettings, download, sha256_file
from fadercli.errors import DownloadError, ModelError, OutputError, UsageError
from fadercli.files import atomic_path

if TYPE_CHECKING:
    from fadercli.weights import LoadedModel

MODEL_FILE = "model.safetensors"  # a model in the cache, and in a training run folder
# format -> the kind of model it holds: "fader", "classifier", None (as the file says), "detector".
FORMATS = {
    "authors-fader-pth": "fader",
    "authors-classifier-pth": "classifier",
    "authors-pth": None,
    "safetensors": None,
    "onnx": "detector",
}
# The one place a file's suffix picks its reader: (module, function(path, kind) -> LoadedModel).
READERS = {
    ".safetensors": ("fadercli.weights", "load_model"),
    ".pth": ("fadercli.authors", "load_pth"),
    ".pt": ("fadercli.train", "load_checkpoint_model"),
}
BUILTIN = "built-in"
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by fader (fadercli).\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)


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
            name, (_AUTHORS_URL.format(name),), "authors-fader-pth", attribute=attribute,
            slider_range=(1.0 - top, float(top)), licence=_AUTHORS_LICENCE, notice=_AUTHORS_NOTICE,
            description=f"the authors' Fader network for {attribute}",
        )
        for name, attribute, top in _AUTHORS_FADER
    ),
    Entry(
        "classifier256", (_AUTHORS_URL.format("classifier256"),), "authors-classifier-pth",
        licence=_AUTHORS_LICENCE, notice=_AUTHORS_NOTICE,
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


# ---------------------------------------------------------------- the home folder and user entries


def home() -> Path:
    """$FADER_HOME, else the per-user cache folder for fader."""
    custom = os.environ.get("FADER_HOME", "")
    if custom:
        return Path(custom).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("fader", appauthor=False))


def _models() -> Path:
    return home() / "models"


def _ensure_home() -> None:
    """Create the home folder with its CACHEDIR.TAG."""
    tag = home() / "CACHEDIR.TAG"
    if tag.is_file():
        return
    try:
        tag.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the fader home {tag.parent}: {e.strerror}") from None
    with atomic_path(tag) as tmp:
        tmp.write_text(_CACHEDIR_TAG)


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


_USER_KEYS = {"url", "urls", "format", "sha256", "size", "attribute", "slider_range", "licence", "license",
              "description", "notice"}


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
            f"registry file {path}: expected [models.NAME] tables (TOML) or {{\"models\": {{NAME: {{...}}}}}} (JSON)"
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


def _cached_names() -> list[str]:
    """Names in the cache with no registry entry: imported models and downloads by URL."""
    folder = _models()
    if not folder.is_dir():
        return []
    known = registry()
    return sorted(p.name for p in folder.iterdir() if p.name not in known and (p / MODEL_FILE).is_file())


def _unknown(name: str) -> ModelError:
    names = [*registry(), *_cached_names()]
    return ModelError(f"no model file or model named {name!r} (models: {', '.join(names)}).{did_you_mean(name, names)}")


def _check_name(name: str) -> str:
    key = name.lower()
    if not _NAME.fullmatch(key) or key.startswith("url-"):
        raise UsageError(f"invalid model name {name!r}: use a-z, 0-9, '_', '.', '-' (not starting with url-)")
    return key


@contextmanager
def _locked(name: str, quiet: bool) -> Iterator[None]:
    """Hold the entry's inter-process lock, saying so if another process has it."""
    from filelock import FileLock, Timeout

    folder = home() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / f"{name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not quiet:
            say(f"waiting for another fader process to finish with {name}")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


# ---------------------------------------------------------------- the cache


def _record_path(name: str) -> Path:
    return _models() / f"{name}.sha256"


def _expected_sha256(entry: Entry) -> tuple[str | None, str]:
    """The sha256 a file must have, and where that comes from."""
    if entry.sha256:
        return entry.sha256, "published in the registry"
    record = _record_path(entry.name)
    if not record.is_file():
        return None, ""
    recorded = record.read_text().strip()
    if not _SHA256.fullmatch(recorded):
        raise ModelError(f"{record}: not a sha256 record; delete it to record a new one")
    return recorded, f"recorded at the first download in {record}"


def _record(entry: Entry, digest: str) -> None:
    record = _record_path(entry.name)
    with atomic_path(record) as tmp:
        tmp.write_text(digest + "\n")
    say(f"{entry.name}: no sha256 is published for this file; recorded {digest} in {record},"
         " and later downloads must match it")


def _check_cached(entry: Entry, path: Path) -> str:
    """Check a file already in the cache (or put there by hand) against its sha256; return it."""
    expected, source = _expected_sha256(entry)
    digest = sha256_file(path)
    if expected is not None and (digest != expected or entry.size is not None and path.stat().st_size != entry.size):
        raise ModelError(
            f"{path}: sha256 {digest} is not the {expected} {source}; the file was changed or replaced"
            f" (`fader models rm {entry.name}` removes it, and it downloads again on next use)"
        )
    return digest


def offline() -> bool:
    return env_flag("FADER_OFFLINE")


def _download_entry(entry: Entry, dest: Path, quiet: bool) -> str:
    if offline():
        raise DownloadError(
            f"{entry.name} is not in the cache and FADER_OFFLINE=1 keeps fader off the network:"
            f" download {entry.urls[0]} and save it as {dest}"
        )
    expected, _ = _expected_sha256(entry)
    job = Download(dest, expected, entry.size, entry.name, interactive=not quiet and sys.stderr.isatty(),
               notice=entry.notice, settings=DownloadSettings.from_env())
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        return download(entry.urls, job)
    except BaseException:
        if not any(dest.parent.iterdir()):  # leave no empty folder behind (a .part stays, to resume)
            dest.parent.rmdir()
        raise


def _convert(entry: Entry, pth: Path, dest: Path, digest: str) -> None:
    """The authors' .pth -> our model.safetensors, with the registry's attribute and slider range."""
    from fadercli.authors import load_pth
    from fadercli.weights import save_model

    loaded = load_pth(pth, kind=entry.kind)
    names = loaded.attributes.names
    if entry.attribute is not None and entry.attribute not in names:
        raise ModelError(f"{pth}: this model edits {', '.join(names)}, not {entry.attribute} as the registry says")
    ranges = {entry.attribute: entry.slider_range} if entry.attribute and entry.slider_range else {}
    training = loaded.training | {"source": entry.urls[0], "source_sha256": digest, "licence": entry.licence}
    save_model(dest, loaded.model, slider_ranges=ranges, training=training)
    pth.unlink()


def _accept(entry: Entry, raw: Path, product: Path, digest: str) -> None:
    """Make sure a file fetched for `entry` is what it should be before anything trusts it: models
    are converted or loaded (detectors have a published sha256). Only then is the sha256 of a file
    that has none published recorded: a bad first body (an error page, a cut download) is deleted,
    not pinned, and the next use downloads it again."""
    expected, _ = _expected_sha256(entry)
    try:
        if entry.converted:
            _convert(entry, raw, product, digest)
        elif expected is None and entry.kind != "detector":
            load_file(raw, entry.kind)
    except ModelError as e:
        raw.unlink(missing_ok=True)
        raise ModelError(f"{entry.name}: the file fetched is not a usable model, so it was deleted ({e})") from None
    if expected is None:
        _record(entry, digest)


def _fetch(entry: Entry, quiet: bool) -> Path:
    folder = _models() / entry.name
    product = folder / entry.product_name
    if entry.converted and product.is_file():  # our own output; loading checks it
        return product
    _ensure_home()
    with _locked(entry.name, quiet):
        if entry.converted and product.is_file():  # made by another process while we waited
            return product
        raw = folder / entry.file_name
        digest = _check_cached(entry, raw) if raw.is_file() else _download_entry(entry, raw, quiet)
        if entry.converted or _expected_sha256(entry)[0] is None:
            _accept(entry, raw, product, digest)
    return product


def fetch(name: str, *, quiet: bool = False) -> Path:
    """The local path of a registry file or cached model, downloading (and converting) it on first use."""
    key = name.lower()
    entry = registry().get(key)
    if entry is not None:
        return _fetch(entry, quiet)
    if _NAME.fullmatch(key) and (_models() / key / MODEL_FILE).is_file():
        return _models() / key / MODEL_FILE
    raise _unknown(name)


def cached_path(name: str) -> Path:
    """Where a name is in the cache, without downloading; a ModelError saying how to get it if absent."""
    key = name.lower()
    entry = registry().get(key)
    if entry is None and not _NAME.fullmatch(key):
        raise _unknown(name)
    product = _models() / key / (entry.product_name if entry else MODEL_FILE)
    if product.is_file():
        return product
    if entry is None:
        raise _unknown(name)
    raise ModelError(f"{key} is not in the cache: `fader models download {key}` fetches it")


def remove(name: str) -> Path:
    """Delete a cached entry (waiting for a download of it to finish); return the folder removed."""
    key = name.lower()
    folder = _models() / key
    if not _NAME.fullmatch(key) or not folder.is_dir():
        raise ModelError(f"{name} is not in the cache")
    with _locked(key, quiet=False):
        shutil.rmtree(folder)
        _record_path(key).unlink(missing_ok=True)  # a new download is checked afresh
    return folder


def import_model(file: str | os.PathLike, name: str, *, force: bool = False) -> Path:
    """Check a local model file (ours or an authors' .pth) and keep it in the cache under `name`."""
    from fadercli.weights import save_model

    key = _check_name(name)
    if key in registry():
        raise UsageError(f"{key} is a registry name: import under another name")
    path = Path(file)
    loaded = load_file(path)
    dest = _models() / key / MODEL_FILE
    _ensure_home()
    with _locked(key, quiet=False):
        if dest.exists() and not force:
            raise OutputError(f"{key} is already in the cache ({dest}): use --force to replace it")
        dest.parent.mkdir(parents=True, exist_ok=True)
        training = loaded.training | {"imported_from": path.name, "source_sha256": sha256_file(path)}
        save_model(dest, loaded.model, slider_ranges=loaded.slider_ranges, training=training)
    return dest


def _metadata(path: Path) -> dict:
    """The JSON metadata values of one of our .safetensors files, read without torch."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
        return {k: json.loads(v) for k, v in metadata.items() if k in ("attributes", "training")}
    except Exception:  # a damaged file still gets listed; loading it gives the real error
        return {}


def list_models() -> list[dict]:
    """One JSON-ready record per registry entry and per other cached model."""
    rows = []
    for entry in registry().values():
        path = _models() / entry.name / entry.product_name
        cached = path.is_file()
        rows.append({
            "name": entry.name,
            "attribute": entry.attribute,
            "kind": entry.kind,
            "format": entry.format,
            "size": path.stat().st_size if cached else entry.size,
            "cached": cached,
            "path": str(path) if cached else None,
            "licence": entry.licence,
            "slider_range": list(entry.slider_range) if entry.slider_range else None,
            "urls": list(entry.urls),
            "description": entry.description,
            "origin": entry.origin,
        })
    for name in _cached_names():
        path = _models() / name / MODEL_FILE
        metadata = _metadata(path)
        training = metadata.get("training") if isinstance(metadata.get("training"), dict) else {}
        rows.append({
            "name": name,
            "attribute": ", ".join(map(str, metadata.get("attributes") or [])) or None,
            "kind": None,
            "format": "safetensors",
            "size": path.stat().st_size,
            "cached": True,
            "path": str(path),
            "licence": str(training.get("licence", "unknown")),
            "slider_range": None,
            "urls": [],
            "description": str(training.get("source") or training.get("imported_from") or ""),
            "origin": "url" if name.startswith("url-") else "imported",
        })
    return rows


# ---------------------------------------------------------------- --model


def load_file(path: Path, kind: str | None = None) -> LoadedModel:
    """A local model file, read by the reader its suffix names (READERS)."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ModelError(f"{path}: not a model file fader reads (expected {' or '.join(READERS)})")
    module, function = reader
    return getattr(importlib.import_module(module), function)(path, kind)


def _url_entry(url: str, kind: str | None) -> Entry:
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    if suffix == ".safetensors":
        fmt = "safetensors"
    elif suffix == ".pth":
        fmt = {"fader": "authors-fader-pth", "classifier": "authors-classifier-pth"}.get(kind, "authors-pth")
    else:
        raise UsageError(f"{url}: cannot tell the file type from the URL (fader downloads .safetensors and .pth files)")
    name = "url-" + hashlib.sha256(url.encode()).hexdigest()[:16]
    return Entry(name, (url,), fmt, description=f"downloaded from {url}", origin="url")


def resolve_model(spec: str, *, kind: str | None = "fader", quiet: bool = False) -> LoadedModel:
    """The model a `--model` value names -> weights.LoadedModel.

    `spec` is a local file (.safetensors, an authors' .pth, a training checkpoint.pt), a folder holding model.safetensors
    (a training run), a registry or cached name, or an http(s) URL; a local path wins over a name.
    `kind` ("fader", "classifier", or None for either) is checked before anything is downloaded.
    """
    if spec.startswith(("http://", "https://")):
        path = _fetch(_url_entry(spec, kind), quiet)
    else:
        path = Path(spec).expanduser()
        if path.is_dir():
            path = path / MODEL_FILE
            if not path.is_file():
                raise ModelError(f"{spec}: a folder without {MODEL_FILE}")
        elif not path.exists():
            if os.sep in spec or "/" in spec or path.suffix.lower() in READERS:
                raise ModelError(f"{path}: no such model file")
            entry = registry().get(spec.lower())
            if entry is not None and entry.kind == "detector":
                raise ModelError(f"{entry.name} ({entry.description or entry.format}) is not a model fader can load")
            if entry is not None and entry.kind is not None:
                from fadercli.weights import require_kind

                require_kind(entry.name, entry.kind, kind)
            path = fetch(spec, quiet=quiet)
    return load_file(path, kind)


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

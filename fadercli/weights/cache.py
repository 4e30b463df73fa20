"""The cache of downloaded models in the fader home. Inside it:
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

import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fadercli import env_flag, say
from fadercli.attributes import did_you_mean
from fadercli.errors import DownloadError, ModelError, OutputError, UsageError
from fadercli.files import atomic_path
from fadercli.weights.download import Download, DownloadSettings, download, sha256_file
from fadercli.weights.readers import load_file
from fadercli.weights.registry import _NAME, _SHA256, MODEL_FILE, Entry, _models, home, registry

_CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by fader (fadercli).\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)


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
    say(
        f"{entry.name}: no sha256 is published for this file; recorded {digest} in {record},"
        " and later downloads must match it",
        logging.WARNING,
    )


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
    job = Download(
        dest,
        expected,
        entry.size,
        entry.name,
        interactive=not quiet and sys.stderr.isatty(),
        notice=entry.notice,
        settings=DownloadSettings.from_env(),
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        return download(entry.urls, job)
    except BaseException:
        if not any(dest.parent.iterdir()):  # leave no empty folder behind (a .part stays, to resume)
            dest.parent.rmdir()
        raise


def _convert(entry: Entry, pth: Path, dest: Path, digest: str) -> None:
    """The authors' .pth -> our model.safetensors, with the registry's attribute and slider range."""
    from fadercli.weights.authors import load_pth
    from fadercli.weights.format import save_model

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
    from fadercli.weights.format import save_model

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
        rows.append(
            {
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
            }
        )
    for name in _cached_names():
        path = _models() / name / MODEL_FILE
        metadata = _metadata(path)
        training = metadata.get("training") if isinstance(metadata.get("training"), dict) else {}
        rows.append(
            {
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
            }
        )
    return rows

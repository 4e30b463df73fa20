"""`--model`: what a model spec names (a local file, a training run folder, a registry or cached
name, an http(s) URL), fetched into the cache if needed, and loaded."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fadercli import say
from fadercli.errors import ModelError, UsageError
from fadercli.weights.cache import _fetch, cached_path, fetch, import_model, list_models, offline, remove
from fadercli.weights.hf import PREFIX as HF_PREFIX
from fadercli.weights.readers import READERS, load_file
from fadercli.weights.registry import (
    AUTHORS_CLASSIFIER,
    MODEL_FILE,
    RUN_CLASSIFIER,
    Entry,
    classifier_for,
    home,
    model_for_attribute,
    registry,
    registry_files,
)

# What the CLI, the server and the Python API use of weights/ (the rest is each module's own).
__all__ = [
    "AUTHORS_CLASSIFIER",
    "MODEL_FILE",
    "RUN_CLASSIFIER",
    "Entry",
    "cached_path",
    "classifier_for",
    "fetch",
    "home",
    "import_model",
    "list_models",
    "load_file",
    "model_for_attribute",
    "offline",
    "registry",
    "registry_files",
    "remove",
    "resolve_model",
]

if TYPE_CHECKING:
    from fadercli.weights.format import LoadedModel


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
    `kind` ("fader", "classifier", or None for either) is checked before anything is downloaded;
    an hf://OWNER/NAME[@REVISION] model comes from the Hugging Face Hub, its commit kept in `origin`.
    """
    if spec.startswith(HF_PREFIX):
        from fadercli.weights.hf import fetch_hub_model

        path, commit = fetch_hub_model(spec)
        say(f"model {spec}: commit {commit}, {path}", logging.DEBUG)
        loaded = load_file(path, kind)
        loaded.origin = f"{spec.split('@')[0]}@{commit}"
        return loaded
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
                from fadercli.weights.format import require_kind

                require_kind(entry.name, entry.kind, kind)
            path = fetch(spec, quiet=quiet)
    say(f"model {spec}: {path}", logging.DEBUG)
    return load_file(path, kind)

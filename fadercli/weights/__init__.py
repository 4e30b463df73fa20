"""Model weights: our .safetensors format (format.py), the authors' .pth files (authors.py, an
allow-list unpickler), training checkpoints (checkpoints.py), the registry of named files
(registry.py), downloads (download.py), the cache (cache.py), and what a `--model` spec names
(hub.py). Every file is checked before anything is built from it."""

from fadercli.weights.cache import fetch, import_model, list_models
from fadercli.weights.format import LoadedModel, load_model, save_model
from fadercli.weights.hub import resolve_model
from fadercli.weights.registry import model_for_attribute

__all__ = [
    "LoadedModel",
    "fetch",
    "import_model",
    "list_models",
    "load_model",
    "model_for_attribute",
    "resolve_model",
    "save_model",
]

"""Model weights: our .safetensors format (format.py), the authors' .pth files (authors.py, an
allow-list unpickler), training checkpoints (checkpoints.py), the registry of named files
(registry.py), downloads (download.py), the cache (cache.py), models on the Hugging Face Hub
(hf.py), and what a `--model` spec names (hub.py). Every file is checked before anything is built from it."""

import importlib

# Loaded on first use, so that `fader models list` and friends start without torch.
_EXPORTS = {
    "fetch": "cache",
    "import_model": "cache",
    "list_models": "cache",
    "LoadedModel": "format",
    "load_model": "format",
    "save_model": "format",
    "resolve_model": "hub",
    "model_for_attribute": "registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)

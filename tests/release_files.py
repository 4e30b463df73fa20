"""Files in the authors' format: what torch.save(model) wrote for them in late 2017.

Legacy (non-zip) serialization of the whole module; storages tagged "cuda:0" and typed
torch.cuda.FloatStorage (they trained on GPUs); BatchNorm objects from before
`track_running_stats` and `num_batches_tracked` (FACTS.md). `modern_state=False` also trims every
module to the attributes PyTorch 0.3's Module had, with the `_backend` it pickled, and pickles
parameters as `Parameter(data, requires_grad)` as the 0.4 development versions did;
`modern_state=True` keeps today's module state, as a newer torch re-saving their model would.
"""

from __future__ import annotations

import copy
import io
import pickletools
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import torch
from torch import nn

_MODULE_STATE_2017 = {
    "_backend",
    "_parameters",
    "_buffers",
    "_backward_hooks",
    "_forward_hooks",
    "_forward_pre_hooks",
    "_modules",
    "training",
}


class _ThnnBackend:
    def __reduce__(self):
        from torch.nn.backends import thnn

        return (thnn._get_thnn_function_backend, ())


def _parameter_2017(self, proto):
    return (nn.Parameter, (self.data, self.requires_grad))


def release_bytes(module: nn.Module, *, modern_state: bool = False, copy_first: bool = True) -> bytes:
    """The file's bytes; `copy_first=False` trims `module` itself (a deep copy would make a stride-0
    view's claimed size real)."""
    module = copy.deepcopy(module) if copy_first else module
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            del m.__dict__["track_running_stats"]
            del m._buffers["num_batches_tracked"]
        if not modern_state:
            for key in [k for k in vars(m) if k.startswith("_") and k not in _MODULE_STATE_2017]:
                del m.__dict__[key]
            m.__dict__["_backend"] = _ThnnBackend()
    buffer = io.BytesIO()
    with ExitStack() as patches:
        patches.enter_context(mock.patch.object(torch.serialization, "location_tag", lambda storage: "cuda:0"))
        if not modern_state:
            patches.enter_context(mock.patch.object(nn.Parameter, "__reduce_ex__", _parameter_2017))
        torch.save(module, buffer, _use_new_zipfile_serialization=False)
    data = buffer.getvalue()
    assert data.count(b"ctorch\nFloatStorage\n") == 1
    return data.replace(b"ctorch\nFloatStorage\n", b"ctorch.cuda\nFloatStorage\n")


def save_release_file(module: nn.Module, path: Path, *, modern_state: bool = False, copy_first: bool = True) -> Path:
    path.write_bytes(release_bytes(module, modern_state=modern_state, copy_first=copy_first))
    return path


def pickled_names(data: bytes) -> set[str]:
    """Every string and global named by the five pickles of a legacy torch file (nothing is run)."""
    f = io.BytesIO(data)
    return {arg for _ in range(5) for _op, arg, _pos in pickletools.genops(f) if isinstance(arg, str)}

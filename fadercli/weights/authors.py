"""The authors' pretrained .pth files, read without running any code from them.

Their files (facebookresearch/FaderNetworks, late 2017) are whole nn.Modules pickled by torch.save
in the legacy (non-zip) format: three small pickles (magic number, protocol version, system info),
then the module's pickle, whose storages are persistent ids
    ('storage', storage type, key, location, element count, view or None),
then a pickle of the storage keys, then each storage's bytes (an int64 element count, the data).

A pickle calls whatever callables it names, so it is read here with an allow-list: the release's
two classes and the torch.nn classes of their layout become inert stand-ins that only keep their
pickled attributes, and tensors are rebuilt by our own functions into CPU memory whatever device
the file names. Any other name is refused before anything is called. The configuration is read
from the pickled object's attributes; weights.build_from_tensors then checks every tensor
against it. Kept apart from weights.py because this is the one place that parses untrusted
pickles: its allow-list should be reviewable on one screen.
"""

from __future__ import annotations

import math
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch

from fadercli.attributes import AttributeSet
from fadercli.errors import ModelError
from fadercli.net.model import ClassifierConfig, FaderConfig
from fadercli.weights.format import LoadedModel, build_from_tensors, default_slider_ranges, is_dense, require_kind

_MAGIC = 0x1950A86A20F9469CFC6C  # torch's legacy format
_PROTOCOL = 1001
_RELEASE_CLASSES = {"src.model.AutoEncoder": "fader", "src.model.Classifier": "classifier"}
_MAX_DEPTH = 16  # module nesting; the release's is 3
_MAX_MODULES = 1000  # modules in the tree; the release's largest has about 60


class _Refused(pickle.UnpicklingError):
    """The pickle names a global that is not on the allow-list."""


class _Inert:
    """An allow-listed class as pickled: its attributes, and no behaviour."""

    qualname = ""

    def __new__(cls, *args):
        obj = super().__new__(cls)
        obj.attrs = {}
        return obj

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"{self.qualname} has unexpected pickled state")
        self.attrs = state


class _Sealed:
    """An allow-listed global shared by every load: a pickle must not change it (BUILD, setattr)."""

    __slots__ = ()

    def __setstate__(self, state):
        raise pickle.UnpicklingError("a pickle may not change an allow-listed global")

    def __setattr__(self, name, value):
        self.__setstate__(None)


class _StorageType(_Sealed):
    """A storage class named by the file (torch.FloatStorage, torch.cuda.FloatStorage ...): a dtype."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: torch.dtype):
        object.__setattr__(self, "dtype", dtype)


class _Call(_Sealed):
    """An allow-listed function (ours, standing in for torch's), callable and sealed."""

    __slots__ = ("function",)

    def __init__(self, function):
        object.__setattr__(self, "function", function)

    def __call__(self, *args):
        return self.function(*args)


def _counts(values) -> bool:
    return isinstance(values, (tuple, list)) and all(type(v) is int and v >= 0 for v in values)


def _rebuild_tensor(storage, storage_offset, size, stride, *_requires_grad_hooks_metadata):
    """torch._utils._rebuild_tensor(_v2): a dense view of a storage, bounds-checked. A view with
    stride 0 or overlapping rows could claim a 20000 x 20000 tensor from one stored float, which
    every later copy would make real: the authors' files hold dense tensors only (weights.is_dense)."""
    if not (
        isinstance(storage, torch.Tensor)
        and _counts([storage_offset])
        and _counts(size)
        and _counts(stride)
        and len(size) == len(stride) <= 8
    ):
        raise pickle.UnpicklingError("malformed tensor record")
    if not is_dense(size, stride):
        raise pickle.UnpicklingError("a tensor is not a dense view of its storage (stride 0 or overlapping)")
    if storage_offset + math.prod(size) > storage.numel():
        raise pickle.UnpicklingError("a tensor reaches outside its storage")
    return storage.as_strided(tuple(size), tuple(stride), storage.storage_offset() + storage_offset)


def _parameter(data, *_requires_grad_hooks):
    """nn.Parameter(data, requires_grad) and torch._utils._rebuild_parameter: just the tensor."""
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("malformed parameter record")
    return data


def _no_backend():
    """torch.nn.backends.thnn._get_thnn_function_backend: 2017 modules pickled their backend."""
    return None


def _allowed() -> dict[str, object]:
    classes = {
        "torch.nn.modules.container": ("Sequential", "ModuleList"),
        "torch.nn.modules.conv": ("Conv2d", "ConvTranspose2d"),
        "torch.nn.modules.batchnorm": ("BatchNorm2d",),
        "torch.nn.modules.instancenorm": ("InstanceNorm2d",),
        "torch.nn.modules.activation": ("LeakyReLU", "ReLU", "Tanh"),
        "torch.nn.modules.dropout": ("Dropout",),
        "torch.nn.modules.upsampling": ("Upsample", "UpsamplingNearest2d"),
        "torch.nn.modules.pixelshuffle": ("PixelShuffle",),
        "torch.nn.modules.linear": ("Linear",),
        "src.model": ("AutoEncoder", "Classifier"),
    }
    allowed: dict[str, object] = {
        f"{module}.{name}": type(name, (_Inert,), {"qualname": f"{module}.{name}"})
        for module, names in classes.items()
        for name in names
    }
    dtypes = {
        "Float": torch.float32,
        "Double": torch.float64,
        "Half": torch.float16,
        "BFloat16": torch.bfloat16,
        "Long": torch.int64,
        "Int": torch.int32,
        "Short": torch.int16,
        "Char": torch.int8,
        "Byte": torch.uint8,
        "Bool": torch.bool,
    }
    for module in ("torch", "torch.cuda"):
        allowed |= {f"{module}.{name}Storage": _StorageType(dtype) for name, dtype in dtypes.items()}
    allowed |= {
        "torch._utils._rebuild_tensor": _Call(_rebuild_tensor),
        "torch._utils._rebuild_tensor_v2": _Call(_rebuild_tensor),
        "torch._utils._rebuild_parameter": _Call(_parameter),
        "torch.nn.parameter.Parameter": _Call(_parameter),
        "torch.nn.backends.thnn._get_thnn_function_backend": _Call(_no_backend),
        # Classes: BUILD on them fails (their __dict__ is read-only).
        "collections.OrderedDict": OrderedDict,
        # Newer torch pickles a module's set of non-persistent buffers; protocol 2 names the
        # builtins module by its Python 2 name.
        "__builtin__.set": set,
    }
    return allowed


_ALLOWED = _allowed()


class _Unpickler(pickle.Unpickler):
    """Resolves globals only through the allow-list; allocates storages within the file's size."""

    def __init__(self, file, budget: int, storages: dict[str, torch.Tensor]):
        super().__init__(file, encoding="latin1")  # latin1 never fails on Python 2 strings
        self.budget = budget
        self.storages = storages

    def find_class(self, module, name):
        try:
            return _ALLOWED[f"{module}.{name}"]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module":
            return pid[1]  # a module class (already allow-listed); its saved source is ignored
        if isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage":
            return self._storage(*pid[1:])
        raise pickle.UnpicklingError("unknown persistent record")

    def _storage(self, storage_type, key, location, numel, view):
        if not (isinstance(storage_type, _StorageType) and isinstance(key, str) and _counts([numel])):
            raise pickle.UnpicklingError("malformed storage record")
        # CUDA storages are read into CPU memory: the location tag is only checked, never used.
        if not isinstance(location, str) or not location.startswith(("cpu", "cuda")):
            raise pickle.UnpicklingError(f"unknown storage location {location!r}")
        root = self.storages.get(key)
        if root is None:
            self.budget -= numel * storage_type.dtype.itemsize
            if self.budget < 0:
                raise pickle.UnpicklingError("its storages are larger than the file")
            root = self.storages[key] = torch.empty(numel, dtype=storage_type.dtype)
        elif root.dtype != storage_type.dtype or root.numel() != numel:
            raise pickle.UnpicklingError("inconsistent storage records")
        if view is None:
            return root
        if not (isinstance(view, tuple) and len(view) == 3 and _counts(view[1:]) and sum(view[1:]) <= numel):
            raise pickle.UnpicklingError("malformed storage view")
        return root[view[1] : view[1] + view[2]]


def _read_legacy(f, size: int) -> object:
    """The object pickled in a legacy torch file, its storages filled from the file."""
    storages: dict[str, torch.Tensor] = {}

    def load():
        allocated = sum(t.numel() * t.itemsize for t in storages.values())
        return _Unpickler(f, size - allocated, storages).load()

    if load() != _MAGIC or load() != _PROTOCOL:
        raise pickle.UnpicklingError("not a PyTorch file in the legacy format")
    sys_info = load()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian"):
        raise pickle.UnpicklingError("written on a big-endian machine, which is not supported")
    obj = load()
    keys = load()
    if not isinstance(keys, list) or sorted(keys) != sorted(storages):
        raise pickle.UnpicklingError("its storage list does not match its tensors")
    for key in keys:
        root = storages[key]
        if int.from_bytes(f.read(8), "little", signed=True) != root.numel():
            raise pickle.UnpicklingError("a storage's size does not match its record (truncated?)")
        if root.numel() and f.readinto(root.view(torch.uint8).numpy()) != root.numel() * root.itemsize:
            raise pickle.UnpicklingError("truncated storage data")
    return obj


def _unpickle(path: Path) -> object:
    if zipfile.is_zipfile(path):
        raise ModelError(
            f"{path}: a zip-format PyTorch file; fader reads the authors' legacy .pth files"
            " and its own .safetensors files"
        )
    try:
        with open(path, "rb") as f:
            return _read_legacy(f, path.stat().st_size)
    except _Refused as e:
        raise ModelError(
            f"{path}: refused: it names {e}, which the authors' files never contain (loading it could run code)"
        ) from None
    except Exception as e:  # malformed data fails in many ways; none of them runs code
        reason = (str(e).splitlines() or [""])[0]
        raise ModelError(f"{path}: not a readable authors' .pth file ({type(e).__name__}: {reason})") from None


_MISSING = object()


class _Settings:
    """Typed access to the pickled object's attributes, with one-line errors."""

    def __init__(self, obj: _Inert, where: str):
        self.attrs, self.where, self.cls = obj.attrs, where, obj.qualname

    def get(self, key: str, kind: type | tuple[type, ...], default=_MISSING):
        value = self.attrs.get(key, default)
        if value is _MISSING:
            raise ModelError(f"{self.where}: the pickled {self.cls} has no {key} setting")
        # bool is an int subclass: a True where a size belongs is a corrupt file, not 1.
        if type(value) is bool and kind is not bool or not isinstance(value, kind):
            expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise ModelError(f"{self.where}: the pickled {self.cls} has {key}={value!r}, expected {expected}")
        return value

    def attributes(self) -> tuple[tuple[str, int], ...]:
        pairs = self.get("attr", (list, tuple))
        if not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str) and type(p[1]) is int for p in pairs
        ):
            raise ModelError(f"{self.where}: the pickled {self.cls} has a malformed attr list")
        n_attr = self.get("n_attr", int)
        if n_attr != sum(n for _, n in pairs):
            raise ModelError(f"{self.where}: n_attr={n_attr} does not match the attr list {pairs!r}")
        return tuple((name, n) for name, n in pairs)

    def common(self) -> dict:
        return {
            "attributes": self.attributes(),
            "img_size": self.get("img_sz", int),
            "img_channels": self.get("img_fm", int),
            "init_fm": self.get("init_fm", int),
            "max_fm": self.get("max_fm", int),
        }


def _fader_config(s: _Settings) -> FaderConfig:
    return FaderConfig(
        **s.common(),
        n_layers=s.get("n_layers", int),
        n_skip=s.get("n_skip", int),
        upsample=s.get("deconv_method", str),  # the release's names are ours
        instance_norm=s.get("instance_norm", bool),
        # The release keeps dec_dropout as `dropout`; it has no weights and is off at inference.
        dec_dropout=float(s.get("dropout", (int, float), 0.0)),
    )


def _classifier_config(s: _Settings) -> ClassifierConfig:
    return ClassifierConfig(**s.common(), hid_dim=s.get("hid_dim", int))


_CONFIGS = {"fader": _fader_config, "classifier": _classifier_config}


def _collect(obj, where: str) -> dict[str, torch.Tensor]:
    """The state dict of a pickled module tree, from its _parameters, _buffers and _modules.

    A pickle can share one module object between many places (a DAG whose paths multiply
    exponentially with its depth): the authors' files never do, so a module met twice, or a tree
    deeper than _MAX_DEPTH or larger than _MAX_MODULES, is refused. (Tensors that share memory are
    refused by weights.build_from_tensors, for every format.)"""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    stack = [(obj, "", 0)]
    while stack:
        module, prefix, depth = stack.pop()
        if not isinstance(module, _Inert) or depth > _MAX_DEPTH:
            raise ModelError(f"{where}: malformed module tree at {prefix or 'the top'}")
        if id(module) in seen:
            raise ModelError(f"{where}: the module at {prefix or 'the top'} appears more than once in the tree")
        seen.add(id(module))
        if len(seen) > _MAX_MODULES:
            raise ModelError(f"{where}: more than {_MAX_MODULES} modules, far more than a Fader network has")
        attrs = module.attrs
        transient = attrs.get("_non_persistent_buffers_set") or set()
        if not isinstance(transient, (set, frozenset)):
            raise ModelError(f"{where}: malformed _non_persistent_buffers_set at {prefix or 'the top'}")
        for group in ("_parameters", "_buffers", "_modules"):
            items = attrs.get(group) or {}
            if not isinstance(items, dict):
                raise ModelError(f"{where}: malformed {group} at {prefix or 'the top'}")
            for name, value in items.items():
                if value is None or (group == "_buffers" and name in transient):
                    continue
                if group == "_modules":
                    stack.append((value, f"{prefix}{name}.", depth + 1))
                elif isinstance(value, torch.Tensor):
                    out[prefix + str(name)] = value
                else:
                    raise ModelError(f"{where}: {prefix}{name} is not a tensor")
    return out


def load_pth(path: str | Path, kind: str | None = None) -> LoadedModel:
    """An authors' .pth file as a checked model in memory; `kind` ("fader"/"classifier") if needed."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    where = str(path)
    obj = _unpickle(path)
    found = _RELEASE_CLASSES.get(getattr(obj, "qualname", None))
    if found is None:
        raise ModelError(f"{where}: holds no AutoEncoder or Classifier of the authors' release")
    require_kind(where, found, kind)
    try:
        config = _CONFIGS[found](_Settings(obj, where))
    except ValueError as e:
        raise ModelError(f"{where}: a configuration fader cannot build: {e}") from None
    model = build_from_tensors(found, config, _collect(obj, where), where)
    return LoadedModel(
        kind=found,
        model=model,
        config=config,
        slider_ranges=default_slider_ranges(AttributeSet.from_pairs(config.attributes)),
        training={"converted_from": "the authors' .pth format (facebookresearch/FaderNetworks)"},
        path=path,
    )

"""Edit photos with an exported model on onnxruntime: numpy, OpenCV and two ONNX graphs, never torch.

    from fadercli.onnxrun import OnnxFader

    fader = OnnxFader.load("runs/smiling/model.analyse.onnx")     # or the folder holding it
    result = fader.edit("photo.jpg", {"Smiling": 1.0})           # as Fader.edit: an EditResult
    save_image(result.image, "out.jpg")                         # fadercli.media.writing

`fader export MODEL --format onnx` (share/onnx_export.py) writes STEM.analyse.onnx and
STEM.render.onnx (net/graphs.py: the coordinate search for each face's own values and the
composition are inside them) and STEM.onnx.json; each graph's metadata (key "fader") holds the
contract this module reads: the attributes and their ranges, the image size and value range, the
crop template. The photo takes the package's own torch-free path around the graphs: read through
the gate (media.images), faces found and aligned with YuNet (faces), pasted back (faces.paste), so
an edit here equals `fader edit`'s at float32. The module lives in the package rather than as an
example so that none of that is written twice; `fader edit --engine onnx` runs it, and
tests/test_onnx.py runs it in a process where importing torch fails (docs/models.md, "ONNX").
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fadercli import faces as facelib
from fadercli.attributes import AttributeSet
from fadercli.engine import plans
from fadercli.engine.results import EditResult, FaceResult
from fadercli.errors import DeviceError, FaderError, ModelError, import_extra, reason
from fadercli.limits import DEFAULT as DEFAULT_LIMITS
from fadercli.limits import Limits
from fadercli.media.images import ImageLike, as_photo
from fadercli.media.writing import like

FORMAT = "fadercli-onnx"
FORMAT_VERSION = 1
METADATA_KEY = "fader"  # the ONNX metadata_props entry holding the contract, as JSON
GRAPHS = ("analyse", "render")
SUFFIXES = {"analyse": ".analyse.onnx", "render": ".render.onnx", "manifest": ".onnx.json"}
OPSET = 18  # the lowest the torch.onnx exporters implement; onnxruntime's CPU, CUDA and WebGPU run it
MAX_BYTES = 2**31 - 1  # protobuf's limit on one file: larger is not a model we wrote (no external data)
MAX_METADATA = 1_000_000  # characters of contract JSON
DEFAULT_BATCH = 16  # faces per run of a graph (the analyse graph decodes 7 trials per face and attribute)


def exported_paths(folder: Path, stem: str) -> dict[str, Path]:
    """Where an export of the weights named `stem` lies in `folder`: its graphs and its manifest."""
    return {kind: Path(folder) / f"{stem}{suffix}" for kind, suffix in SUFFIXES.items()}


@dataclass(frozen=True)
class Contract:
    """What an exported model's metadata promises a runner (docs/models.md, "The files' contract")."""

    attributes: AttributeSet
    slider_ranges: dict[str, tuple[float, float]]
    size: int
    features: tuple[str, ...]
    graphs: dict[str, str]  # graph -> file name, in the same folder
    trials: int  # the most values the analyse graph decodes per face and attribute (its search)
    data: dict  # the whole JSON, model and geometry included

    @classmethod
    def parse(cls, text: str | None, where: str) -> Contract:
        """The contract in a graph's or manifest's JSON; ModelError for a file fader did not export
        or cannot read."""
        if text is None:
            raise ModelError(f"{where}: an ONNX model, but not one `fader export` wrote (no fader metadata)")
        try:
            if len(text) > MAX_METADATA:
                raise ValueError("the metadata is too large")
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ModelError(f"{where}: not a model `fader export` wrote (its metadata is another format's)")
            version = data.get("format_version")
            if version != FORMAT_VERSION:
                raise ModelError(
                    f"{where}: export format version {version} is not supported (this fadercli reads"
                    f" {FORMAT_VERSION}); upgrade fadercli"
                )
            attributes = AttributeSet.from_pairs((a["name"], a["categories"]) for a in data["attributes"])
            ranges = {a["name"]: (float(a["slider_range"][0]), float(a["slider_range"][1])) for a in data["attributes"]}
            size = data["image"]["size"]
            features = tuple(data["features"])
            graphs = {g: data["graphs"][g] for g in GRAPHS}
            trials = max(data["search"]["grid"], *(a.n_categories for a in attributes))
            if type(size) is not int or not 32 <= size <= 512:
                raise ValueError(f"image size {size!r}")
            if type(trials) is not int or trials < 1:
                raise ValueError(f"search grid {trials!r}")
            if not all(isinstance(f, str) for f in features) or not features:
                raise ValueError("features must be names")
            for name in graphs.values():  # a name in the same folder, nothing that climbs out of it
                if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
                    raise ValueError(f"graph file {name!r}")
            if not all(math.isfinite(v) for pair in ranges.values() for v in pair):
                raise ValueError("slider ranges must be finite")
        except ModelError:
            raise
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise ModelError(f"{where}: invalid fader metadata ({type(e).__name__}: {reason(e)})") from None
        return cls(attributes, ranges, size, features, graphs, trials, data)

    def inputs(self, graph: str) -> list[str]:
        return ["image"] if graph == "analyse" else ["image", "recon", "estimate", "values", *self.features]

    def outputs(self, graph: str) -> list[str]:
        return ["estimate", "recon", *self.features] if graph == "analyse" else ["edited"]


def providers_for(device: str) -> list:
    """onnxruntime's execution providers for `--device`: cpu, cuda[:N], or auto (CUDA where this
    onnxruntime has it); DeviceError where the ask cannot be met, never a silent fallback."""
    ort = import_extra("onnxruntime", "onnx")
    available = ort.get_available_providers()
    if device == "auto":
        device = "cuda" if "CUDAExecutionProvider" in available else "cpu"
    if device == "cpu":
        return ["CPUExecutionProvider"]
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise DeviceError(f"--device {device}: the onnx engine runs on auto, cpu, cuda or cuda:N")
    if "CUDAExecutionProvider" not in available:
        raise DeviceError(f"--device {device}: this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)")
    return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]


def _session(path: Path, providers: list, threads: int | None):
    """An onnxruntime session for the graph at `path` and its contract; ModelError for anything else."""
    ort = import_extra("onnxruntime", "onnx")
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    size = path.stat().st_size
    if size > MAX_BYTES:  # bound the cost before reading a byte
        raise ModelError(f"{path}: {size / 2**30:.1f} GiB, larger than any exported fader model")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # onnxruntime's own warnings are not the user's business
    if threads:
        options.intra_op_num_threads = threads
    try:
        # From bytes: the model is the file's content alone, never data from files it names.
        session = ort.InferenceSession(path.read_bytes(), sess_options=options, providers=providers)
    except Exception as e:  # onnxruntime's parser on untrusted bytes: each of its failures is this one line
        raise ModelError(f"{path}: not a readable ONNX model (truncated or corrupt: {reason(e)})") from None
    contract = Contract.parse(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), str(path))
    return session, contract


class OnnxFader:
    """An exported model's two graphs on onnxruntime, editing the faces of photos as Fader.edit does."""

    def __init__(
        self,
        analyse,
        render,
        contract: Contract,
        path: Path,
        *,
        threshold: float | None = None,
        limits: Limits = DEFAULT_LIMITS,
        batch_size: int = DEFAULT_BATCH,
    ):
        self.sessions = {"analyse": analyse, "render": render}
        self.contract = contract
        self.path = path  # the analyse graph's file: what records name as the model
        self.threshold = facelib.DEFAULT_THRESHOLD if threshold is None else threshold
        self.limits = limits
        self.batch_size = batch_size

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        device: str = "cpu",
        threads: int | None = None,
        threshold: float | None = None,
        limits: Limits = DEFAULT_LIMITS,
        batch_size: int = DEFAULT_BATCH,
    ) -> OnnxFader:
        """The exported model at `path`: either graph's .onnx file, its .onnx.json manifest, or a folder
        holding one export. Both graphs are opened and checked against each other and the contract."""
        providers = providers_for(device)
        first = _first_graph(Path(path).expanduser())
        if first.name.endswith(SUFFIXES["manifest"]):  # the manifest names the graphs
            first = first.parent / Contract.parse(_read_text(first), str(first)).graphs["analyse"]
        session, contract = _session(first, providers, threads)
        graph = contract.data.get("graph")
        if graph not in GRAPHS:
            raise ModelError(f"{first}: invalid fader metadata (graph {graph!r})")
        other = "render" if graph == "analyse" else "analyse"
        other_path = first.parent / contract.graphs[other]
        other_session, other_contract = _session(other_path, providers, threads)
        if other_contract.data != {**contract.data, "graph": other}:
            raise ModelError(f"{other_path}: not the {other} graph of {first} (exported from another model)")
        opened = {graph: (session, first), other: (other_session, other_path)}
        for name, (s, where) in opened.items():
            _check_signature(s, contract, name, where, device)
        return cls(
            opened["analyse"][0],
            opened["render"][0],
            contract,
            opened["analyse"][1],
            threshold=threshold,
            limits=limits,
            batch_size=batch_size,
        )

    # ------------------------------------------------------------ what the model edits

    @property
    def attributes(self) -> AttributeSet:
        return self.contract.attributes

    @property
    def size(self) -> int:
        return self.contract.size

    @property
    def providers(self) -> list[str]:
        """The execution providers the graphs run on, first choice first."""
        return self.sessions["analyse"].get_providers()

    def owner(self, name: str) -> tuple[OnnxFader, str]:
        """This model, and attribute `name` as it spells it (as Fader.owner answers for a chain)."""
        return self, plans.owner([self.attributes], name)[1]

    def slider_range(self, name: str) -> tuple[float, float]:
        return self.contract.slider_ranges[self.owner(name)[1]]

    def plan(
        self, values: Mapping[str, float] | None, shift: Mapping[str, float] | None
    ) -> tuple[dict[str, float], dict[str, float]]:
        """(values set, values shifted) under the model's names; UsageError as Fader.plan gives it."""
        [(_, absolute, shifted)] = plans.plan([self.attributes], values, shift)
        return absolute, shifted

    # ------------------------------------------------------------ crops

    def analyse(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """(estimate, recon, features) for crops x (B, 3, S, S) float32 in [-1, 1]. The graph decodes
        every trial of its search at once, so faces go in so few at a time that a run decodes about
        `batch_size` crops, as Editor's search does."""
        step = max(1, self.batch_size // self.contract.trials)
        parts = [
            self.sessions["analyse"].run(None, {"image": x[start : start + step]}) for start in range(0, len(x), step)
        ]
        estimate, recon, *features = (np.concatenate(outputs) for outputs in zip(*parts))
        return estimate, recon, features

    def render(self, x: np.ndarray, analysis: tuple, values: np.ndarray) -> np.ndarray:
        """The crops edited to `values` (B, n_attributes), from their analysis."""
        estimate, recon, features = analysis
        names = self.contract.inputs("render")
        out = []
        for start in range(0, len(x), self.batch_size):
            chunk = slice(start, start + self.batch_size)
            feeds = [x[chunk], recon[chunk], estimate[chunk], values[chunk], *(f[chunk] for f in features)]
            out.append(self.sessions["render"].run(None, dict(zip(names, feeds)))[0])
        return np.concatenate(out)

    def values_for(self, estimate: np.ndarray, absolute: Mapping[str, float], shift: Mapping[str, float]) -> np.ndarray:
        """Target values: the estimate, with some attributes set and some moved (as Editor.values_for)."""
        target = estimate.copy()
        for name, value in absolute.items():
            target[:, self.attributes.index(name)] = value
        for name, delta in shift.items():
            target[:, self.attributes.index(name)] += delta
        return target

    # ------------------------------------------------------------ photos

    def edit(
        self,
        image: ImageLike,
        values: Mapping[str, float] | None = None,
        shift: Mapping[str, float] | None = None,
        *,
        face: str | int = "all",
        align: bool = True,
    ) -> EditResult:
        """Edit the faces of one image as Fader.edit does: `values` sets attributes, `shift` moves them
        from each face's own value; the image comes back as the kind it was given (a Photo for a path)."""
        started = time.perf_counter()
        absolute, shifted = self.plan(values, shift)
        photo = as_photo(image, self.limits)
        aligned = facelib.align_faces(
            photo,
            size=self.size,
            choice=facelib.parse_face_choice(str(face)),
            align=align,
            threshold=self.threshold,
            max_faces=self.limits.max_faces,
        )
        x = np.ascontiguousarray(np.stack([f.crop for f in aligned]).transpose(0, 3, 1, 2)) * 2 - 1
        analysis = self.analyse(x)
        estimate = analysis[0]
        target = self.values_for(estimate, absolute, shifted)
        edited = x if (target == estimate).all() else self.render(x, analysis, target)
        out = facelib.paste_faces(
            photo, [f.alignment for f in aligned], _to_unit(edited), _to_unit(x)
        )  # the change edited - x, under the mask: every other pixel as it was
        names = self.attributes.names
        faces = [
            FaceResult(
                f.index,
                f.face.box if f.face else None,
                dict(zip(names, e)),
                dict(zip(names, t)),
            )
            for f, e, t in zip(aligned, estimate.tolist(), target.tolist())
        ]
        image_out = like(out if out is not photo else photo.copy(), image)
        return EditResult(image, image_out, faces, time.perf_counter() - started)

    def edit_many(
        self,
        images: Iterable[ImageLike],
        values: Mapping[str, float] | None = None,
        shift: Mapping[str, float] | None = None,
        *,
        face: str | int = "all",
        align: bool = True,
        on_error: Callable[[ImageLike, FaderError], None] | None = None,
    ) -> Iterator[EditResult]:
        """`edit` for each image in turn, as Fader.edit_many: an image that fails on its own raises, or
        with `on_error` is handed to it and skipped; any other failure raises."""
        self.plan(values, shift)
        for image in images:
            try:
                yield self.edit(image, values, shift, face=face, align=align)
            except FaderError as e:
                if on_error is None or not e.one_input:
                    raise
                on_error(image, e)


def _to_unit(x: np.ndarray) -> np.ndarray:
    """(B, 3, S, S) in [-1, 1] -> B x S x S x 3 in [0, 1], as net.tensors.to_unit."""
    return ((x + 1) / 2).transpose(0, 2, 3, 1)


def _first_graph(path: Path) -> Path:
    """The file to open first: `path` itself, or the one export in a folder."""
    if not path.is_dir():
        if not path.exists():
            raise ModelError(f"{path}: no such model file")
        return path
    found = sorted(path.glob("*" + SUFFIXES["analyse"]))
    if len(found) != 1:
        what = "no exported model" if not found else f"{len(found)} exported models: name one"
        raise ModelError(f"{path}: {what} (*{SUFFIXES['analyse']}; `fader export MODEL --format onnx` writes one)")
    return found[0]


def _read_text(path: Path) -> str:
    if path.stat().st_size > MAX_METADATA:
        raise ModelError(f"{path}: too large for a manifest")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: cannot read it ({reason(e)})") from None


def _check_signature(session, contract: Contract, graph: str, path: Path, device: str) -> None:
    """The graph's inputs and outputs as the contract names them, images of its size; on the device asked."""
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if inputs != contract.inputs(graph) or outputs != contract.outputs(graph):
        raise ModelError(f"{path}: its inputs and outputs are not those of fader's {graph} graph")
    shape = session.get_inputs()[0].shape
    if list(shape[1:]) != [3, contract.size, contract.size]:
        raise ModelError(f"{path}: takes images of shape {shape}, its metadata says {contract.size} px")
    if device.startswith("cuda") and "CUDAExecutionProvider" not in session.get_providers():
        raise DeviceError(f"--device {device}: onnxruntime could not start its CUDA provider (see its log)")

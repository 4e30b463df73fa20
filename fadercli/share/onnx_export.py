"""`fader export MODEL --format onnx`: a model as two ONNX graphs that any onnxruntime runs (the CPU's,
CUDA's, WebGPU's in a browser, C#'s, ...), with the contract a runner needs in their metadata.

    STEM.analyse.onnx   image -> estimate, recon, feature_0 [, ...]       (net/graphs.py)
    STEM.render.onnx    image, recon, estimate, values, feature_0 [, ...] -> edited
    STEM.onnx.json      the contract (also in each graph's metadata_props, key "fader")

The graphs are traced from net/graphs.py's modules, which are built from the functions Editor
runs, with TorchScript's exporter (torch.onnx.export(dynamo=False)) at opset 18 and a dynamic
batch. That exporter is deprecated in favour of the torch.export-based one (dynamo=True), which
traces these modules too (checked on torch 2.13, a toy model: outputs within 1e-4 of the model's,
as these are), but this one exports a model in about a second where the other took 15 to 30
(2-core CPU), needs no onnxscript, and exists in every torch fader supports (>= 2.4); switch when
torch drops it. Before anything is written, the
graphs run on onnxruntime against the model itself, so a file is never written that edits
otherwise than the model.
"""

from __future__ import annotations

import io
import json
import warnings
from contextlib import ExitStack
from pathlib import Path

from fadercli import __version__
from fadercli.errors import ModelError, OutputError, UsageError, import_extra
from fadercli.files import atomic_path
from fadercli.onnxrun import FORMAT, FORMAT_VERSION, GRAPHS, METADATA_KEY, OPSET, SUFFIXES, exported_paths

TOLERANCE = 1e-3  # the most an output of the graphs may differ from the model's (float32, [-1, 1])


def contract(loaded, spec: str, paths: dict[str, Path]) -> dict:
    """The exported files' contract (docs/models.md, "The files' contract") for a loaded model."""
    from fadercli.faces.geometry import FIT_WEIGHTS, template
    from fadercli.faces.paste import MASK_CENTRE, MASK_FULL, MASK_RADII
    from fadercli.net import editor
    from fadercli.net.graphs import feature_names
    from fadercli.weights.download import sha256_file

    size = loaded.config.img_size
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fadercli_version": __version__,
        "opset": OPSET,
        "model": {
            "name": spec,
            "source": loaded.source,
            "sha256": sha256_file(loaded.path) if loaded.path else None,
            "config": loaded.config.to_dict(),
            "training": loaded.training,
        },
        "graphs": {graph: paths[graph].name for graph in GRAPHS},
        "attributes": [
            {
                "name": a.name,
                "categories": a.n_categories,
                "encoding": "pair (1 - a, a)" if a.binary else "one-hot of the rounded index",
                "slider_range": list(loaded.slider_ranges[a.name]),
            }
            for a in loaded.attributes
        ],
        "image": {"size": size, "layout": "NCHW", "channels": "RGB", "range": [-1.0, 1.0], "dtype": "float32"},
        "features": feature_names(loaded.model),
        "crop": {
            "points": ["image-left eye", "image-right eye", "mouth centre (between the mouth corners)"],
            "template": [[round(v, 6) for v in point] for point in template(size).tolist()],
            "weights": FIT_WEIGHTS.tolist(),
            "fit": "weighted least-squares similarity (rotation, uniform scale, shift), photo -> crop",
            "resampling": "bicubic, edge pixels repeated; area-averaged first where it shrinks below half",
            "pixels": "centres at integers, 0-based",
        },
        "paste": {
            "rule": "photo += warp_to_photo((edited - image) / 2) * mask, pixels in [0, 1]",
            "mask": "ellipse in crop coordinates u, v = (crop xy + 0.5) / size - centre",
            "centre": list(MASK_CENTRE),
            "radii": list(MASK_RADII),
            "full": MASK_FULL,
            "edge": "t = clip((1 - |(u, v) / radii|) / (1 - full), 0, 1); mask = t * t * (3 - 2 t)",
        },
        "search": {"graph": "analyse", "grid": editor.SEARCH_GRID, "range": list(editor.SEARCH_RANGE)},
        "compose": {
            "graph": "render",
            "change_floor": editor.CHANGE_FLOOR,
            "change_ramp": editor.CHANGE_RAMP,
            "small_edit": editor.SMALL_EDIT,
        },
    }


def export_onnx(spec: str, dest: str | Path | None = None, *, force: bool = False) -> list[Path]:
    """Export the model a `--model` spec names to ONNX; the paths written. `dest` is the folder (made
    if missing; default: beside a local model's weights); existing files are kept unless `force`."""
    onnx = import_extra("onnx", "onnx")
    import_extra("onnxruntime", "onnx")
    from fadercli.weights.hub import resolve_model

    local = Path(spec).expanduser().exists()
    if dest is None and not local:
        raise UsageError(f"{spec} is not a local model: give the folder to write the ONNX files into")
    loaded = resolve_model(spec, kind="fader")
    folder = Path(dest) if dest is not None else loaded.path.parent
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file")
    paths = exported_paths(folder, loaded.path.stem)
    for path in paths.values():
        if path.exists() and not force:
            raise OutputError(f"{path} exists (use --force to overwrite)")
    terms = contract(loaded, spec, paths)
    graphs = _graphs(loaded.model)
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:  # every file written before any takes its place
        for graph, data in graphs.items():
            proto = onnx.load_model_from_string(data)
            entry = proto.metadata_props.add()
            entry.key, entry.value = METADATA_KEY, json.dumps({**terms, "graph": graph})
            proto.producer_name, proto.producer_version = "fadercli", __version__
            onnx.checker.check_model(proto)
            stack.enter_context(atomic_path(paths[graph])).write_bytes(proto.SerializeToString())
        stack.enter_context(atomic_path(paths["manifest"])).write_text(json.dumps(terms, indent=1) + "\n")
    return [paths[kind] for kind in SUFFIXES]


def _graphs(model) -> dict[str, bytes]:
    """The analyse and render graphs of `model` as ONNX bytes, checked on onnxruntime against the model."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from fadercli.net.graphs import Analyse, Render, feature_names

    model = model.to("cpu", torch.float32).eval()
    size, names = model.config.img_size, feature_names(model)
    inputs = {"analyse": ["image"], "render": ["image", "recon", "estimate", "values", *names]}
    outputs = {"analyse": ["estimate", "recon", *names], "render": ["edited"]}
    modules = {"analyse": Analyse(model).eval(), "render": Render(model).eval()}
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, size, size, generator=generator) * 2 - 1
    with torch.no_grad():
        estimate, recon, *features = modules["analyse"](image)
    # Values that move every attribute, and the second face at its own values (the render's exact case).
    values = torch.where(estimate > 0.5, estimate - 1, estimate + 1)
    values[1] = estimate[1]
    examples = {"analyse": (image,), "render": (image, recon, estimate, values, *features)}
    out = {}
    for graph, module in modules.items():
        buffer = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation notice and tracer remarks
            torch.onnx.export(
                module,
                examples[graph],
                buffer,
                dynamo=False,
                opset_version=OPSET,
                input_names=inputs[graph],
                output_names=outputs[graph],
                dynamic_axes={name: {0: "batch"} for name in inputs[graph] + outputs[graph]},
            )
        out[graph] = buffer.getvalue()
        # Checked at a batch other than the traced one, so a size baked into the graph shows.
        session = ort.InferenceSession(out[graph], providers=["CPUExecutionProvider"])
        feeds = {name: torch.cat([t, t[:1]]).numpy() for name, t in zip(inputs[graph], examples[graph])}
        with torch.no_grad():
            expected = module(*(torch.from_numpy(feeds[name]) for name in inputs[graph]))
        expected = expected if isinstance(expected, tuple) else (expected,)
        for name, got, want in zip(outputs[graph], session.run(None, feeds), expected):
            gap = float(np.abs(got - want.numpy()).max()) if got.shape == tuple(want.shape) else float("inf")
            if not gap <= TOLERANCE:
                raise ModelError(
                    f"the exported {graph} graph's {name} differs from the model's by {gap:.2g}: not written"
                )
    return out

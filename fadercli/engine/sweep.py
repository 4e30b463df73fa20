"""Sweeps: attributes slid through a range of values, each face encoded once and every step decoded
in batches; the cells as an animation (GIF or video) or a static grid."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fadercli import faces as facelib
from fadercli.engine.chain import Chain
from fadercli.errors import OutputError, UsageError
from fadercli.limits import MAX_STEPS, MAX_VALUE
from fadercli.media.formats import image_format, is_writable_video
from fadercli.media.grids import fit_size, gif_bytes, pad, resize, save_gif, tile
from fadercli.media.images import Photo, from_array, to_uint8
from fadercli.media.writing import encode_image, save_image
from fadercli.net.tensors import from_crops, to_unit
from fadercli.net.tensors import resize as resize_crops
from fadercli.progress import checkpoint


def sweep_values(
    chain: Chain,
    names: list[str],
    *,
    steps: int = 10,
    value_range: tuple[float, float] | None = None,
    max_size: int = 256,
) -> dict[str, np.ndarray]:
    """{attribute as the models spell it: its `steps` values over `value_range`, default its
    recommended range}; a UsageError for anything a sweep cannot do, before any work."""
    if not names:
        raise UsageError("a sweep needs at least one image and one attribute")
    if not 2 <= steps <= MAX_STEPS:
        raise UsageError(f"a sweep takes from 2 to {MAX_STEPS} steps (frames), got {steps}")
    if not 16 <= max_size <= 4096:
        raise UsageError(f"--max-size must be from 16 to 4096 pixels, got {max_size}")
    canonical = [chain.owner(name)[1] for name in names]
    if len(set(canonical)) < len(canonical):
        raise UsageError("an attribute is named twice")
    values = {}
    for name in canonical:
        lo, hi = value_range or chain.slider_range(name)
        if not (abs(lo) <= MAX_VALUE and abs(hi) <= MAX_VALUE) or lo == hi:  # NaN fails too
            raise UsageError(
                f"a sweep range needs two different values from -{MAX_VALUE} to {MAX_VALUE}, got {lo:g}:{hi:g}"
            )
        values[name] = np.linspace(lo, hi, steps)
    return values


@torch.inference_mode()
def sweep(
    chain: Chain,
    photos: list[Photo],
    aligned: list[list[facelib.AlignedFace]],
    values: dict[str, np.ndarray],
    *,
    crop: bool = False,
    max_size: int = 256,
) -> Sweep:
    """Each attribute of `values` (sweep_values) slid through them, the others kept at each face's
    own values, for the faces `aligned` (at sweep_size) of `photos`. Each face is encoded once per
    model; all steps are decoded in batches. Cells show the whole photo with its faces edited, or
    with `crop` the aligned faces, scaled so that their longer side is `max_size` pixels."""
    if not photos:
        raise UsageError("a sweep needs at least one image and one attribute")
    names = list(values)
    owners = [chain.owner(name) for name in names]
    steps = len(values[names[0]])
    size = sweep_size(chain, names)
    x = from_crops([f.crop for faces in aligned for f in faces]).to(chain.device)
    analyses: dict[int, tuple] = {}
    swept = []  # per attribute: (faces, steps, S, S, 3) in [0, 1]
    for model, name in owners:
        xin = resize_crops(x, model.size)
        if id(model) not in analyses:
            analyses[id(model)] = model.editor.analyse(xin)
        out = model.editor.sweep(xin, name, values[name].tolist(), analysis=analyses[id(model)])
        if model.size != size:
            change = resize_crops((out - xin[:, None]).flatten(0, 1), size).view(len(x), steps, 3, size, size)
            out = (x[:, None] + change).clamp(-1, 1)
        swept.append(to_unit(out.flatten(0, 1)).reshape(len(x), steps, size, size, 3))
        checkpoint()
    reference = to_unit(x)
    if crop:
        cell = (max_size, max_size)
        originals = [resize(to_uint8(r), cell) for r in reference]
        cells = [[np.stack([resize(to_uint8(f), cell) for f in s[i]]) for s in swept] for i in range(len(x))]
    else:
        originals, cells = _photo_cells(photos, aligned, swept, reference, max_size)
    return Sweep(names, values, originals, cells)


def sweep_size(chain: Chain, names: list[str]) -> int:
    """The size faces are aligned at for a sweep of these attributes: the largest of their models'."""
    return max(chain.owner(name)[0].size for name in names)


def _photo_cells(
    photos: list[Photo],
    aligned: list[list[facelib.AlignedFace]],
    swept: list[np.ndarray],
    reference: np.ndarray,
    max_size: int,
) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Sweep cells of whole photos: each photo scaled to its cell first, its faces' changes pasted there."""
    fitted = [fit_size(p.width, p.height, max_size) for p in photos]
    box = (max(w for w, _ in fitted), max(h for _, h in fitted))
    originals, cells = [], []
    first = 0
    for photo, faces, (w, h) in zip(photos, aligned, fitted):
        small = from_array(resize(photo.rgb8(), (w, h)))
        alignments = [f.alignment.scaled(w / photo.width, h / photo.height) for f in faces]
        indices = range(first, first + len(faces))
        first += len(faces)
        originals.append(pad(small.pixels, box))
        row = []
        for s in swept:
            frames = []
            for j in range(s.shape[1]):
                edited = small.copy()
                for i, alignment in zip(indices, alignments):
                    facelib.paste(edited, alignment, s[i, j], reference[i], inplace=True)
                frames.append(pad(edited.pixels, box))
            row.append(np.stack(frames))
            checkpoint()
        cells.append(row)
    return originals, cells


@dataclass
class Sweep:
    """A sweep's images: per subject (a photo; a face with crop=True) and attribute, one image per value.

    All cells are the same size (smaller photos centred on white). `frames()` are a GIF's frames, each a
    grid of subjects (rows) x attributes (columns) at one step, the value written under each cell;
    `grid()` the static sheet, a row per subject and attribute: the original, then every step.
    """

    attributes: list[str]
    values: dict[str, np.ndarray]
    originals: list[np.ndarray]  # per subject: (h, w, 3) uint8
    cells: list[list[np.ndarray]]  # [subject][attribute]: (steps, h, w, 3) uint8

    @property
    def steps(self) -> int:
        return len(self.values[self.attributes[0]])

    def order(self, bounce: bool = False) -> list[int]:
        """Step indices frame by frame: 0 .. n-1, and with `bounce` back down to 1 (2n - 2 frames, the
        ends not repeated, so the animation loops smoothly)."""
        forward = list(range(self.steps))
        return forward + forward[-2:0:-1] if bounce else forward

    def label(self, name: str, step: int) -> str:
        values = self.values[name]
        # Enough decimals that neighbouring steps read differently (and GIF frames never coincide).
        decimals = max(2, min(6, math.ceil(-math.log10(abs(values[1] - values[0]))) + 1))
        return f"{name} {values[step]:.{decimals}f}"

    def frames(self, bounce: bool = False) -> list[Image.Image]:
        frames = []
        for j in self.order(bounce):
            rows = [[attribute[j] for attribute in subject] for subject in self.cells]
            captions = [[self.label(name, j) for name in self.attributes] for _ in self.cells]
            frames.append(tile(rows, captions))
        return frames

    def grid(self) -> Image.Image:
        rows, captions = [], []
        for original, subject in zip(self.originals, self.cells):
            for name, steps in zip(self.attributes, subject):
                rows.append([original, *steps])
                captions.append(["original", *(self.label(name, j) for j in range(self.steps))])
        return tile(rows, captions)

    def save(self, path: str | os.PathLike, *, fps: float = 8.0, bounce: bool = False) -> Path:
        """`.gif`: the animation (looping); `.mp4`, `.webm`, ...: the animation as video (full colour,
        H.264 or VP9; see fadercli/video); any other image format: the static grid. Written atomically."""
        path = Path(path)
        if path.suffix.lower() == ".gif" or is_writable_video(path):
            if not path.parent.is_dir():
                raise OutputError(f"cannot write {path}: no such folder {path.parent}")
            if is_writable_video(path):
                from fadercli.media.encoder import save_video

                save_video([np.asarray(f) for f in self.frames(bounce)], path, fps=fps)
            else:
                save_gif(self.frames(bounce), path, fps=fps)
        elif image_format(path) is None:
            raise UsageError(f"{path}: give a .gif (animation) or an image file name such as .png or .jpg (grid)")
        else:
            save_image(from_array(np.asarray(self.grid())), path)
        return path

    def encode(self, format: str = "gif", *, fps: float = 8.0, bounce: bool = False) -> bytes:
        """The bytes `save` writes: "gif" the animation, another image format (png, jpeg, ...) the grid."""
        if format.lower() == "gif":
            return gif_bytes(self.frames(bounce), fps=fps)
        return encode_image(from_array(np.asarray(self.grid())), format)

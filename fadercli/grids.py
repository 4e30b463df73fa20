"""Contact sheets: images laid out in a grid with a caption under each cell."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_CAPTION_H = 12
_PAD = 2


def tile(
    cells: Sequence[Sequence[np.ndarray]],
    captions: Sequence[Sequence[str]] | None = None,
    *,
    scale: int = 1,
) -> Image.Image:
    """uint8 RGB cells (rows of equal-size images) -> one RGB image; captions drawn under cells."""
    h, w = cells[0][0].shape[:2]
    h, w = h * scale, w * scale
    n_rows, n_cols = len(cells), max(len(r) for r in cells)
    cap = _CAPTION_H if captions else 0
    sheet = Image.new("RGB", (n_cols * (w + _PAD) + _PAD, n_rows * (h + cap + _PAD) + _PAD), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            x0, y0 = _PAD + c * (w + _PAD), _PAD + r * (h + cap + _PAD)
            image = Image.fromarray(cell)
            if scale != 1:
                image = image.resize((w, h), Image.Resampling.NEAREST)
            sheet.paste(image, (x0, y0))
            if captions and captions[r][c]:
                text = captions[r][c]
                width = draw.textlength(text, font=font)
                draw.text((x0 + max(0, (w - width) / 2), y0 + h), text, fill=(0, 0, 0), font=font)
    return sheet


def save_gif(frames: Sequence[Image.Image], path, *, fps: float = 8.0, loop: bool = True) -> None:
    """An animated GIF, written atomically; each frame gets its own adaptive palette."""
    from fadercli.files import atomic_path

    paletted = [f.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) for f in frames]
    with atomic_path(path) as tmp:
        paletted[0].save(
            tmp, format="GIF", save_all=True, append_images=paletted[1:], duration=round(1000 / fps),
            disposal=1, **({"loop": 0} if loop else {}),  # no loop key: play once
        )

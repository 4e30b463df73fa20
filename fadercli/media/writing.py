"""Writing photos: each in the mode its format can store that is closest to the input's (grey stays
grey, alpha and 16 bits are kept where the format allows, palette GIFs keep their palette), with
its ICC profile, DPI and EXIF, atomically. AVIF and HEIF are written at 8 bits, 4:4:4."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from fadercli.errors import OutputError
from fadercli.files import atomic_path
from fadercli.media import heif
from fadercli.media.formats import image_format
from fadercli.media.images import Photo, _to_8bit

# Encoder speeds, measured on a 3 MP photo at quality 90, 4:4:4 (on a loaded 2-core machine): AVIF
# speed 8 takes 2.0 s (speed 6, Pillow's default, 5.2 s; 13% smaller), x265's ultrafast preset 1.8 s
# (its default, medium, 17 s, for a file as large and as close to the input).
AVIF_SPEED = 8
HEIF_PRESET = "ultrafast"


def to_pil(photo: Photo) -> Image.Image:
    """The photo as a Pillow image in its own mode (16-bit colour comes back as 8-bit RGB)."""
    return _to_pil(photo, "PNG")


def _to_pil(photo: Photo, fmt: str) -> Image.Image:
    """The photo as a Pillow image in the mode the format can store that is closest to the input's."""
    pixels, alpha = photo.pixels, photo.alpha
    if photo.bits == 16 and not (fmt in ("PNG", "TIFF") and photo.mode == "L" and alpha is None):
        # Pillow keeps 16 bits for plain grey only (16-bit RGB PNG goes through OpenCV, see save_image).
        pixels = _to_8bit(pixels)
        alpha = None if alpha is None else _to_8bit(alpha)
    if photo.mode == "L":
        if pixels.dtype == np.uint16:
            return Image.fromarray(pixels[..., 0])  # I;16
        if alpha is not None:
            return Image.fromarray(np.dstack([pixels, alpha]), "LA")
        im = Image.fromarray(pixels[..., 0], "L")
        return im.convert("1", dither=Image.Dither.NONE) if photo.source_mode == "1" else im
    if photo.mode == "CMYK":
        return Image.fromarray(pixels, "CMYK")
    if alpha is not None:
        return Image.fromarray(np.dstack([pixels, alpha]), "RGBA")
    return Image.fromarray(pixels, "RGB")


def _fit_format(im: Image.Image, fmt: str, photo: Photo) -> Image.Image:
    """Convert to a mode the format can store, losing as little as possible."""
    if fmt == "JPEG":
        if im.mode in ("RGBA", "LA"):
            return im.convert(im.mode[:-1])
        return im if im.mode in ("L", "RGB", "CMYK") else im.convert("L" if im.mode == "1" else "RGB")
    if fmt == "GIF":
        if photo.palette is not None:
            return _with_palette(im.convert("RGB"), photo.palette)
        return im.convert("RGB").quantize(dither=Image.Dither.NONE)
    if fmt in ("AVIF", "HEIF") and im.mode not in ("L", "RGB", "RGBA"):
        return im.convert("RGBA" if im.mode in ("LA", "PA") else "L" if im.mode == "1" else "RGB")
    if im.mode == "CMYK" and fmt not in ("TIFF", "PDF"):
        return im.convert("RGB")
    return im


def _with_palette(im: Image.Image, palette: Image.Image) -> Image.Image:
    """A palette image in `palette`'s colours: each colour found in the palette gets its exact entry
    (Pillow's quantize is approximate), so untouched pixels keep their colours; others the nearest."""
    entries = np.array(palette.getpalette()[:768], dtype=np.int64).reshape(-1, 3)
    rgb = np.asarray(im).astype(np.int64)
    keys, entry_keys = rgb @ [65536, 256, 1], entries @ [65536, 256, 1]
    order = np.argsort(entry_keys, kind="stable")
    at = np.minimum(np.searchsorted(entry_keys[order], keys), len(order) - 1)
    exact = entry_keys[order][at] == keys
    nearest = np.asarray(im.quantize(palette=palette, dither=Image.Dither.NONE))
    out = Image.fromarray(np.where(exact, order[at], nearest).astype(np.uint8), "P")
    out.putpalette(palette.getpalette())
    return out


def output_format_of(name: str, photo: Photo, format: str | None = None) -> str:
    """The format an output called `name` is written in: `format`, else its extension's, else the
    input's, else PNG."""
    fmt = (format or image_format(name) or photo.format or "PNG").upper()
    if fmt not in Image.SAVE and fmt not in ("JPG", "AVIF", "HEIF"):  # the last two: see encode_image
        raise OutputError(f"{name}: cannot write the format {fmt}")
    return fmt


def save_image(photo: Photo, path: str | os.PathLike, *, format: str | None = None, quality: int = 95) -> Path:
    """Write `photo` atomically; the format is `format`, else the extension's, else the input's.

    The input's mode and bit depth are kept where the format allows: grey stays grey, RGBA keeps its
    alpha, 16-bit PNG stays 16-bit. ICC profile, DPI and EXIF (orientation already applied) go along.
    """
    path = Path(path)
    fmt = output_format_of(str(path), photo, format)
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: no such folder {path.parent}")
    with atomic_path(path) as tmp:
        try:
            tmp.write_bytes(encode_image(photo, fmt, quality=quality))
        except OutputError as e:
            raise OutputError(f"cannot write {path}: {e}") from None
    return path


def encode_image(photo: Photo, format: str, *, quality: int = 95) -> bytes:
    """The bytes save_image writes for `photo` in `format` (PNG, JPEG, WEBP, ...)."""
    fmt = format.upper()
    fmt = {"JPG": "JPEG", "HEIC": "HEIF"}.get(fmt, fmt)
    if fmt in ("AVIF", "HEIF"):
        heif.require(fmt)  # HEIF's plugin is registered only now
    Image.preinit()  # the common formats; the rest only when asked for
    if fmt not in Image.SAVE:
        Image.init()
    if fmt not in Image.SAVE:
        raise OutputError(f"cannot write the format {fmt}")
    if fmt == "PNG" and photo.bits == 16 and photo.mode == "RGB":
        return _encode_16bit_colour_png(photo)
    im = _fit_format(_to_pil(photo, fmt), fmt, photo)
    options = {k: v for k, v in photo.info.items() if k in ("icc_profile", "dpi", "exif")}
    if fmt == "JPEG":
        options.update(quality=quality, subsampling=0)
    elif fmt == "PNG":
        options.update(compress_level=4)  # as small as the default 6 on photos, 1.5x faster
    elif fmt == "AVIF":
        options.update(quality=quality, subsampling="4:4:4", speed=AVIF_SPEED)
    elif fmt == "HEIF":
        options.update(quality=quality, chroma=444, enc_params={"preset": HEIF_PRESET})
        if "nclx_profile" in photo.info:  # pillow-heif takes it from the image, not from the options
            im.info["nclx_profile"] = photo.info["nclx_profile"]
    buffer = io.BytesIO()
    try:
        im.save(buffer, format=fmt, **options)
    except (OSError, ValueError) as e:
        raise OutputError(str(e).splitlines()[0] if str(e) else f"cannot encode {fmt}") from None
    return buffer.getvalue()


def _encode_16bit_colour_png(photo: Photo) -> bytes:
    import cv2

    bgr = photo.pixels[..., ::-1]
    if photo.alpha is not None:
        bgr = np.dstack([bgr, photo.alpha.astype(np.uint16)])
    ok, data = cv2.imencode(".png", np.ascontiguousarray(bgr))
    if not ok:
        raise OutputError("cannot encode a 16-bit PNG")
    return data.tobytes()


def like(photo: Photo, source: object) -> Photo | Image.Image | np.ndarray:
    """An edited photo as the same kind of thing as its source was (media.images.ImageLike): a PIL
    image for a PIL image, an array of the source's shape for an array, else the Photo (a file's)."""
    if isinstance(source, Image.Image):
        return to_pil(photo)
    if isinstance(source, np.ndarray):
        return photo.pixels[..., 0] if source.ndim == 2 else photo.pixels
    return photo

"""Reading and writing photos, keeping each photo's own pixel format.

A Photo holds the decoded pixels in the photo's own colour model and bit depth (grey, RGB or
CMYK; 8 or 16 bits) plus the alpha channel apart. Detection and alignment look at an RGB view;
an edit comes back as a change in RGB that is converted into the photo's own model only where it
applies, so every other pixel is written back exactly as it was read.

What is read: JPEG (and MPO), PNG, WebP, GIF, TIFF, BMP, PPM/PGM/PBM and AVIF through Pillow, HEIC/HEIF
through pillow-heif (the `heif` extra; media/heif.py), EXIF orientation applied, plus 16-bit RGB(A)
PNG, which Pillow would cut to 8 bits, through OpenCV. Of an animation or image sequence, the first
frame (HEIF: the primary image); 10- and 12-bit AVIF and HEIF at 8 bits, as their decoders scale them.
Every image goes through one gate, `open_image`: formats outside that list are refused unread (Pillow
would hand PostScript to Ghostscript), the pixel count is checked from the header against
limits.Limits before anything is decoded (AVIF and HEIF, which their decoders take whole, are also
bounded in bytes), and any decoder failure is one InputError line. Modes
without a faithful way back (palette, YCbCr, ...) are converted to RGB(A) on reading; palette GIFs
are written back with their own palette.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fadercli.errors import FaderError, InputError, reason
from fadercli.limits import DEFAULT as DEFAULT_LIMITS
from fadercli.limits import MEGA, PILLOW_CEILING, Limits
from fadercli.media import heif

# Pillow's plugins fader opens untrusted files with: decoders inside Pillow's own libraries only.
# (EPS would run Ghostscript on the file; PSD, ICO, FITS, ... are not photos and widen the surface.)
# JPEG's opener also reads MPO (multi-picture JPEG); PPM's reads PGM and PBM too. AVIF and HEIF files
# are told by their `ftyp` box and opened by their own plugin only (HEIF's is registered when met).
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "PPM")
READABLE = "JPEG, PNG, WebP, GIF, TIFF, BMP, PPM/PGM, AVIF, HEIC/HEIF"
# Kinds of files people mistake for photos, by their first bytes: only for a clearer refusal.
_OTHER_KINDS = (
    (b"%!PS", "a PostScript file"),
    (b"\xc5\xd0\xd3\xc6", "a PostScript (EPS) file"),
    (b"%PDF", "a PDF document"),
    (b"<svg", "an SVG drawing"),
    (b"<?xml", "an XML file"),
    (b"8BPS", "a Photoshop file"),
    (b"\x00\x00\x01\x00", "a Windows icon"),
    (b"\x00\x00\x00\x0cjP", "a JPEG 2000 image"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM video"),
)

# Pillow mode as read -> (colour model kept in memory, whether it has alpha).
_MODES = {
    "1": ("L", False),
    "L": ("L", False),
    "LA": ("L", True),
    "La": ("L", True),
    "I;16": ("L", False),
    "I;16L": ("L", False),
    "I;16B": ("L", False),
    "I;16N": ("L", False),
    "RGB": ("RGB", False),
    "RGBA": ("RGB", True),
    "RGBa": ("RGB", True),
    "RGBX": ("RGB", False),
    "CMYK": ("CMYK", False),
}
# Pillow's own conversion to grey (ITU-R 601-2 luma); a change in RGB maps to grey the same way.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_ORIENTATION = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Photo:
    """A decoded photo. `pixels` is H x W x C in its own colour model: C = 1 (grey), 3 (RGB) or 4
    (CMYK), uint8 or uint16; `alpha` is H x W of the same dtype, or None."""

    pixels: np.ndarray
    mode: str
    alpha: np.ndarray | None = None
    source_mode: str = ""  # Pillow's mode as read ("P", "I;16", "LA", ...; "RGB;16" for 16-bit RGB)
    format: str | None = None  # "PNG", "JPEG", ... as read
    path: Path | None = None
    info: dict = field(default_factory=dict)  # carried to the output: icc_profile, dpi, exif, nclx_profile
    palette: Image.Image | None = None  # a palette image's own palette, to write GIFs back with it

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def bits(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def max_value(self) -> int:
        return 65535 if self.bits == 16 else 255

    def copy(self) -> Photo:
        alpha = None if self.alpha is None else self.alpha.copy()
        return replace(self, pixels=self.pixels.copy(), alpha=alpha, info=dict(self.info))

    def rgb(self, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The photo (or the box x0, y0, x1, y1 of it) as float32 RGB in [0, 1]."""
        x0, y0, x1, y1 = box or (0, 0, self.width, self.height)
        region = self.pixels[y0:y1, x0:x1].astype(np.float32) / self.max_value
        if self.mode == "L":
            return np.repeat(region, 3, axis=2)
        if self.mode == "CMYK":  # Pillow's own CMYK -> RGB
            return (1 - region[..., :3]) * (1 - region[..., 3:])
        return region

    def rgb8(self) -> np.ndarray:
        """The whole photo as uint8 RGB (for detection and drawing), without a float copy of it."""
        if self.mode == "CMYK":
            return to_uint8(self.rgb())
        pixels = _to_8bit(self.pixels)
        return pixels if self.mode == "RGB" else np.repeat(pixels, 3, axis=2)

    def native_change(self, change: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """A change in RGB ([0, 1] units, the box's shape) as a change of this photo's own values."""
        if self.mode == "L":
            return (change @ LUMA)[..., None] * self.max_value
        if self.mode == "CMYK":
            # Inverse of r = (1 - c)(1 - k) with k kept: a step dr is a step -dr / (1 - k) of c.
            x0, y0, x1, y1 = box
            ink = self.pixels[y0:y1, x0:x1, 3:].astype(np.float32) / 255
            cmy = -change / np.maximum(1 - ink, 1 / 255) * 255
            return np.concatenate([cmy, np.zeros_like(ink)], axis=2)
        return change * self.max_value

    def add_change(self, change: np.ndarray, box: tuple[int, int, int, int], where: np.ndarray) -> None:
        """Add an RGB change to the pixels of `box` where `where` is true; all others stay as they are."""
        x0, y0, x1, y1 = box
        region = self.pixels[y0:y1, x0:x1]
        updated = region.astype(np.float32)
        updated += self.native_change(change, box)
        np.clip(np.rint(updated, out=updated), 0, self.max_value, out=updated)
        # copyto with a mask writes in place; boolean indexing would copy both sides (3x slower)
        np.copyto(region, updated.astype(region.dtype), where=where[..., None])


def _to_8bit(array: np.ndarray) -> np.ndarray:
    """uint16 -> uint8, rounded (65535 = 255 * 257); uint8 as it is."""
    if array.dtype != np.uint16:
        return array
    return ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8, rounded."""
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def _png_is_16bit_colour(head: bytes) -> bool:
    """True for a PNG with 16 bits per sample in colour (type 2 RGB or 6 RGBA), which Pillow cuts to 8
    bits; `head` is the file's first 26 bytes."""
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return False
    depth, colour_type = struct.unpack("BB", head[24:26])
    return depth == 16 and colour_type in (2, 6)


def _orient(array: np.ndarray, orientation: int | None) -> np.ndarray:
    """EXIF orientation on an array, as ImageOps.exif_transpose does it on an image."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation or 1)
    return np.ascontiguousarray(op(array)) if op else array


def _read_16bit_colour_png(
    data: np.ndarray, name: str, orientation: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    import cv2

    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16 or array.ndim != 3:
        raise InputError(f"{name}: cannot decode this 16-bit PNG", code="unreadable_image")
    array = _orient(array, orientation)
    rgb = np.ascontiguousarray(array[..., 2::-1])
    alpha = np.ascontiguousarray(array[..., 3]) if array.shape[2] == 4 else None
    return rgb, alpha


def read_image(path: str | os.PathLike, *, limits: Limits = DEFAULT_LIMITS) -> Photo:
    """Decode an image file (EXIF orientation applied) into a Photo; InputError for anything unusable."""
    path = Path(path)
    return _decode(path, str(path), path, limits)


def decode_image(data: bytes, name: str, *, limits: Limits = DEFAULT_LIMITS) -> Photo:
    """Decode an image held in memory (an upload) as read_image decodes files, with the same checks;
    `name` only says which image an error is about."""
    return _decode(io.BytesIO(data), name, None, limits)


def _kind_of(head: bytes) -> str | None:
    """What a file that is not an allowed image is, by its first bytes (for the message)."""
    for signature, kind in _OTHER_KINDS:
        if head.lstrip().startswith(signature):
            return kind
    return None


@contextmanager
def open_image(
    source: str | os.PathLike | io.BytesIO, name: str, limits: Limits = DEFAULT_LIMITS
) -> Iterator[Image.Image]:
    """The gate every untrusted image goes through: a lazily decoded Pillow image of an allowed format
    (ALLOWED_FORMATS: none that hands the file to another program) whose size is within `limits`,
    checked from the header before any pixel is decoded. Any failure inside the block, Pillow's and
    the decoders' included, becomes one InputError line."""
    if not isinstance(source, io.BytesIO):
        source = Path(source)
        if source.exists() and not source.is_dir() and not source.is_file():
            raise InputError(f"{name}: not a regular file", code="not_an_image")
    head = _head(source)
    container = heif.kind(head)
    if container:
        heif.require(container)
        size = source.getbuffer().nbytes if isinstance(source, io.BytesIO) else source.stat().st_size
        limits.check_bytes(size, name)
    try:
        with warnings.catch_warnings():
            # Pillow warns from MAX_IMAGE_PIXELS on and refuses from twice that; fader's own limit decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source, formats=(container,) if container else ALLOWED_FORMATS) as im:
                limits.check_pixels(im.width, im.height, name)
                yield im
    except FaderError:
        raise
    except FileNotFoundError:
        raise InputError(f"{name}: no such file", code="no_such_file") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a folder, not an image", code="no_such_file") from None
    except Image.DecompressionBombError:
        raise InputError(
            f"{name}: more than {PILLOW_CEILING:,} pixels, over the {limits.max_pixels / MEGA:g} MP limit"
            " (--max-megapixels), refused as a possible decompression bomb",
            code="too_many_pixels",
        ) from None
    except UnidentifiedImageError:
        if container:  # Pillow only says it could not identify the file: ask the decoder why
            data = source.getvalue() if isinstance(source, io.BytesIO) else source.read_bytes()
            why = heif.why_unreadable(data, container)
            raise InputError(f"{name}: cannot decode this {container} image: {why}", code="unreadable_image") from None
        kind = _kind_of(head)
        what = f"{kind}, not a photo format fader reads" if kind else "not an image, or a format fader does not read"
        raise InputError(f"{name}: {what} (it reads {READABLE})", code="not_an_image") from None
    except MemoryError:
        raise InputError(f"{name}: not enough memory to decode it", code="too_many_pixels") from None
    except Exception as e:  # truncated or corrupt data fails in many ways inside the decoders
        raise InputError(f"{name}: cannot decode: {reason(e)}", code="unreadable_image") from None


def _head(source: Path | io.BytesIO) -> bytes:
    """The first bytes of a file (enough for an ISO base media file's `ftyp` box); b"" if unreadable."""
    if isinstance(source, io.BytesIO):
        with source.getbuffer() as view:
            return bytes(view[: heif.HEAD_BYTES])
    try:
        with open(source, "rb") as f:
            return f.read(heif.HEAD_BYTES)
    except OSError:
        return b""


def _decode(source: Path | io.BytesIO, name: str, path: Path | None, limits: Limits) -> Photo:
    def raw(n: int = -1) -> np.ndarray:
        """The encoded bytes (the first n), without Pillow's decoding."""
        if path is not None:
            return np.fromfile(path, dtype=np.uint8, count=n)
        data = np.frombuffer(source.getbuffer(), np.uint8)
        return data if n < 0 else data[:n]

    with open_image(source, name, limits) as im:
        fmt = im.format
        orientation = im.getexif().get(_ORIENTATION)
        if fmt == "PNG" and _png_is_16bit_colour(raw(26).tobytes()):
            rgb, alpha = _read_16bit_colour_png(raw(), name, orientation)
            info = {k: im.info[k] for k in ("icc_profile", "dpi") if k in im.info}
            return Photo(rgb, "RGB", alpha, "RGB;16", fmt, path, info)
        im = ImageOps.exif_transpose(im)
        im.load()
        return _from_pil(im, fmt, path, name)


def _from_pil(im: Image.Image, fmt: str | None, path: Path | None, name: str = "the image") -> Photo:
    source_mode = im.mode
    # nclx: a HEIF file's colour description in place of an ICC profile (an HDR photo's PQ or HLG curve)
    info = {k: im.info[k] for k in ("icc_profile", "dpi", "exif", "nclx_profile") if k in im.info}
    palette = None
    if im.mode in ("P", "PA"):
        palette = im.copy() if fmt == "GIF" and im.mode == "P" else None
        has_alpha = im.mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif im.mode == "I":
        # Older Pillow opens 16-bit grey PNGs as 32-bit "I"; true 32-bit data has no way back.
        values = np.asarray(im)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise InputError(f"{name}: 32-bit integer images are not supported", code="unsupported_image")
        im = Image.fromarray(values.astype(np.uint16))
    elif im.mode not in _MODES:
        if im.mode == "F":
            raise InputError(f"{name}: 32-bit float images are not supported", code="unsupported_image")
        im = im.convert("RGBA" if "A" in im.mode else "RGB")
    model, has_alpha = _MODES[im.mode]
    if im.mode == "1":
        im = im.convert("L")
    array = np.asarray(im)
    if array.dtype.byteorder not in ("=", "|"):
        array = array.astype(array.dtype.newbyteorder("="))
    if array.ndim == 2:
        array = array[..., None]
    alpha = None
    if has_alpha:
        alpha, array = array[..., -1].copy(), array[..., :-1]
    return Photo(np.ascontiguousarray(array), model, alpha, source_mode, fmt, path, info, palette)


def from_pil(image: Image.Image) -> Photo:
    """A Photo from a Pillow image (EXIF orientation applied), e.g. from a notebook."""
    return _from_pil(ImageOps.exif_transpose(image), image.format, None)


def from_array(rgb: np.ndarray) -> Photo:
    """A Photo from an H x W x 3 uint8 RGB array (or uint16; or H x W grey), e.g. from a notebook."""
    array = np.asarray(rgb)
    if array.dtype not in (np.uint8, np.uint16):
        raise InputError(f"pixel arrays must be uint8 or uint16, got {array.dtype}")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise InputError(f"expected an H x W x 3 (RGB) or H x W (grey) array, got shape {array.shape}")
    mode = "L" if array.shape[2] == 1 else "RGB"
    return Photo(np.ascontiguousarray(array), mode, source_mode=mode)


# What the Python API and the ONNX runner take as an image: a path, a Photo, a PIL image or an array.
ImageLike = Union[str, os.PathLike, Photo, Image.Image, np.ndarray]


def as_photo(image: ImageLike, limits: Limits = DEFAULT_LIMITS) -> Photo:
    """A Photo from a file path (read through the gate, within `limits`), a PIL image, an H x W (x 3)
    uint8/uint16 array, or a Photo."""
    if isinstance(image, Photo):
        return image
    if isinstance(image, Image.Image):
        return from_pil(image)
    if isinstance(image, np.ndarray):
        return from_array(image)
    if isinstance(image, (str, os.PathLike)):
        return read_image(image, limits=limits)
    raise TypeError(f"cannot read an image from a {type(image).__name__}")


def centre_square(width: int, height: int) -> tuple[int, int, int, int]:
    """The box x0, y0, x1, y1 of an image's centre square (all of a square image)."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def resize_square(image: Image.Image, size: int) -> np.ndarray:
    """A square RGB image at size x size, uint8 (Lanczos up, box down): `fader train` prepares its
    images this way, and `--no-align` gives the models the same pixels to edit."""
    if image.width != size:
        method = Image.Resampling.LANCZOS if image.width < size else Image.Resampling.BOX
        image = image.resize((size, size), method)
    return np.asarray(image, dtype=np.uint8)

"""Which files are photos and which are clips, by name: what fader reads and writes, and how the
inputs of a command expand (folders, glob patterns). Pure Python: the CLI asks before PyAV loads.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from fadercli.errors import InputError, UsageError

# Containers read as video, by extension (an animated GIF stays a photo: Pillow reads it).
VIDEO_SUFFIXES = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".mpg",
        ".mpeg",
        ".ts",
        ".mts",
        ".m2ts",
        ".wmv",
        ".flv",
        ".3gp",
        ".ogv",
        ".mxf",
        ".nut",
        ".y4m",
    }
)
# Containers written, by extension -> FFmpeg's muxer name. WebM gets VP9, the others H.264.
# (AVI is read, not written: it keeps neither variable frame rates nor H.264's reordered frames well.)
WRITABLE = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
# Photos as phones save them, whose Pillow plugins are not among the common ones: AVIF (Pillow's own,
# from 11.3) and HEIF (pillow-heif, the `heif` extra, registered only when such a file is met).
PHONE_FORMATS = {".avif": "AVIF", ".heic": "HEIF", ".heif": "HEIF", ".hif": "HEIF"}
# The names a photo fader reads may have: what a folder is searched for.
PHOTO_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp", ".ppm", ".pgm"}
    | {".pbm", ".pnm", *PHONE_FORMATS}
)


def is_video(path: str | os.PathLike) -> bool:
    """Whether an input is taken as a clip (by its container's extension)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_writable_video(path: str | os.PathLike) -> bool:
    """Whether an output name asks for a video that fader can write."""
    return Path(path).suffix.lower() in WRITABLE


def image_format(path: str | os.PathLike) -> str | None:
    """The Pillow format an output name asks for by its extension (None if unknown)."""
    from PIL import Image

    suffix = Path(path).suffix.lower()
    if suffix in PHONE_FORMATS:
        return PHONE_FORMATS[suffix]
    Image.preinit()  # the common formats; loading every plugin (registered_extensions) costs ~0.05 s
    return Image.EXTENSION.get(suffix) or Image.registered_extensions().get(suffix)


def output_format(name: str) -> tuple[str, str]:
    """`--format` (png, jpg, webp, ...) -> (Pillow's format name, the file extension to use)."""
    from PIL import Image

    fmt = name.strip().lstrip(".").upper()
    fmt = {"JPG": "JPEG", "TIF": "TIFF", "HEIC": "HEIF", "HIF": "HEIF"}.get(fmt, fmt)
    if fmt == "HEIF":  # pillow-heif registers it only when a HEIF file is written (media/heif.py)
        return fmt, ".heic"
    extensions = [ext for ext, f in Image.registered_extensions().items() if f == fmt]
    if fmt not in Image.SAVE or not extensions:
        raise UsageError(
            f"--format {name}: not an image format fader can write (e.g. png, jpg, webp, avif, heic, tiff)"
        )
    preferred = {"JPEG": ".jpg", "TIFF": ".tif"}.get(fmt, f".{fmt.lower()}")
    return fmt, preferred if preferred in extensions else sorted(extensions)[0]


def edited_name(name: str, extension: str | None = None) -> str:
    """What `fader edit` calls the output of the file `name`: <stem>_fader with --format's extension,
    else the input's."""
    path = Path(name)
    return f"{path.stem}_fader{extension or path.suffix}"


def expand_inputs(inputs: Iterable[str | os.PathLike], *, clips: bool = False) -> list[Path]:
    """Files as given, folders as the photos inside them (and with `clips` the videos; sorted), glob
    patterns expanded."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            extensions = PHOTO_SUFFIXES | VIDEO_SUFFIXES if clips else PHOTO_SUFFIXES
            images = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
            found += sorted(p for p in images if p.suffix.lower() in extensions)
        elif path.exists():
            found.append(path)
        elif any(ch in str(item) for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(item)) if os.path.isfile(p))
            if not matches:
                raise InputError(f"{item}: no file matches")
            found += matches
        else:
            raise InputError(f"{item}: no such file")
    return found

"""HEIF and AVIF, the formats phones save photos in. Both are ISO base media files: which of the two a
file is comes from the brands of its `ftyp` box, before any decoder sees it.

AVIF is Pillow's own (libavif with dav1d, in Pillow's wheels from 11.3). HEIF (HEIC) needs
pillow-heif, the `heif` extra: libheif with the libde265 HEVC decoder, 6 MB of wheel whose decoder
has had many memory-safety fixes, so it is installed only by those who want it and registered with
Pillow only when a HEIF file is read or written, never for any other photo (nor by `fader --help`).
"""

from __future__ import annotations

import io
import threading

from fadercli.errors import MissingExtraError, import_extra, reason

_AVIF_BRANDS = frozenset({b"avif", b"avis"})
# HEVC images and image sequences, and the generic brands (HEIF files from cameras list one of these).
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"})
HEAD_BYTES = 256  # enough for an `ftyp` box with a few dozen brands
_lock = threading.Lock()
_registered = False


def kind(head: bytes) -> str | None:
    """'AVIF', 'HEIF', or None for a file that is neither, from its first HEAD_BYTES bytes."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    end = min(int.from_bytes(head[:4], "big"), len(head))
    brands = {head[8:12]} | {head[at : at + 4] for at in range(16, end - 3, 4)}
    if brands & _AVIF_BRANDS:  # AVIF files list the generic brand mif1 too
        return "AVIF"
    return "HEIF" if brands & _HEIF_BRANDS else None


def require(fmt: str) -> None:
    """Make Pillow able to read and write `fmt` ('AVIF' or 'HEIF'), or say in one line what to install
    (MissingExtraError, exit code 2)."""
    global _registered
    if fmt == "AVIF":
        from PIL import features

        if not features.check("avif"):  # a Pillow built without libavif (its wheels have it from 11.3)
            raise MissingExtraError("AVIF photos need Pillow 11.3 or later with AVIF support: pip install -U pillow")
        return
    if fmt != "HEIF" or _registered:
        return
    with _lock:
        if not _registered:
            pillow_heif = import_extra("pillow_heif", "heif")
            # The primary image only: thumbnails, depth maps and auxiliary images are never parsed.
            pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
            _registered = True


def why_unreadable(data: bytes, fmt: str) -> str:
    """What the decoder of `fmt` says about a file it could not open (Pillow only says it could not
    identify it): its first line, or that the file is damaged."""
    from PIL import Image

    try:
        Image.OPEN[fmt][0](io.BytesIO(data), None)
    except Exception as e:  # the plugins raise SyntaxError, ValueError, RuntimeError, ... with the reason
        return reason(e)
    return "damaged or truncated"

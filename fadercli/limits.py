"""What one untrusted input may cost: pixels per photo or video frame, faces per photo.

Photos, clips and uploads are checked against these before anything is decoded or encoded
(images.open_image, video.clips.probe), so a file of a few kilobytes that claims a huge picture
is refused in one line instead of taking gigabytes. The CLI's defaults suit one user's own
photos; `fader serve` uses lower ones (SERVE), since anyone who can reach it can upload.
Pure Python: the CLI checks option values with it before torch is imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fadercli.errors import InputError, UsageError

MEGA = 1_000_000
MAX_STEPS = 1000  # a sweep's values (an animation's frames): every step of every face is held decoded
MAX_VALUE = 100  # slider values and shifts; the authors' sliders go to 10 (1e308 would not fit a float32)
# Pillow refuses images over twice its MAX_IMAGE_PIXELS (2 x 89,478,485) as decompression bombs
# whatever fader allows: the highest limit that can be honoured.
PILLOW_CEILING = 178_956_970


@dataclass(frozen=True)
class Limits:
    """max_pixels: a photo's or a video frame's width x height (a 100 MP 8-bit photo takes about
    1.5 GB to edit; 16-bit twice that). max_faces: faces edited per photo, the largest first."""

    max_pixels: int = 100 * MEGA
    max_faces: int = 64

    def __post_init__(self) -> None:
        if not 1 <= self.max_pixels <= PILLOW_CEILING:
            raise UsageError(
                f"the pixel limit must be from 1 to {PILLOW_CEILING / MEGA:.0f} megapixels, got {self.max_pixels / MEGA:g}"
            )
        if not 1 <= self.max_faces <= 1000:
            raise UsageError(f"--max-faces must be from 1 to 1000, got {self.max_faces}")

    @classmethod
    def of(cls, megapixels: float | None = None, max_faces: int | None = None, base: Limits | None = None) -> Limits:
        """Limits from option values (None: `base`'s, else the defaults); UsageError for values that
        are not finite or out of range."""
        base = base or cls()
        if megapixels is None:
            pixels = base.max_pixels
        elif not math.isfinite(megapixels) or megapixels <= 0:
            raise UsageError(f"--max-megapixels must be a finite number above 0, got {megapixels}")
        else:
            pixels = max(1, round(megapixels * MEGA))
        return cls(pixels, base.max_faces if max_faces is None else max_faces)

    def check_pixels(self, width: int, height: int, name: str, what: str = "the image") -> None:
        """InputError (code too_many_pixels) when width x height is over the limit."""
        if width * height > self.max_pixels:
            raise InputError(
                f"{name}: {what} is {width} x {height} pixels ({width * height / MEGA:.1f} MP), over the"
                f" {self.max_pixels / MEGA:g} MP limit (--max-megapixels)",
                code="too_many_pixels",
            )

    def check_bytes(self, size: int, name: str) -> None:
        """InputError (code too_large) for a file of `size` bytes that a decoder would read whole (AVIF,
        HEIF) and that is larger than the largest picture allowed, uncompressed at 16 bits per RGB
        sample: no photo compresses to more, so such a file is padding or an attack."""
        if size > 6 * self.max_pixels:
            raise InputError(
                f"{name}: {size / MEGA:,.0f} MB, more than an uncompressed {self.max_pixels / MEGA:g} MP photo"
                " (--max-megapixels)",
                code="too_large",
            )


DEFAULT = Limits()
SERVE = Limits(max_pixels=40 * MEGA, max_faces=16)

"""fader: Fader Networks for your own photos.

Kept free of heavy imports: `fader --help` loads this package, and must not pull in torch or cv2.
"""

import os
import sys

__version__ = "0.1.0"


def env_flag(name: str) -> bool:
    """Whether environment variable `name` is set to anything but "" or "0"."""
    return os.environ.get(name, "") not in ("", "0")


def say(message: str) -> None:
    """A message for the user on stderr (results go to stdout)."""
    print(f"fader: {message}", file=sys.stderr, flush=True)

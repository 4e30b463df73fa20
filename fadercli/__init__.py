"""fader: Fader Networks for your own photos.

Kept free of heavy imports: `fader --help` loads this package, and must not pull in torch or cv2.
"""

import logging
import os

__version__ = "0.1.0"

# The library is quiet unless asked: its messages go to this logger, which the `fader` command
# (or an application, through logging's own configuration) gives a handler.
logger = logging.getLogger("fadercli")
logger.addHandler(logging.NullHandler())


def env_flag(name: str) -> bool:
    """Whether environment variable `name` is set to anything but "" or "0"."""
    return os.environ.get(name, "") not in ("", "0")


def say(message: str, level: int = logging.INFO) -> None:
    """A message for the user (the command shows it on stderr; results go to stdout)."""
    logger.log(level, message)

"""Known failures and their exit codes.

The CLI's error boundary turns any FaderError into one line on stderr and `exit_code`; anything
else is a bug and keeps its traceback. The codes are documented in README.md ("Exit codes").
"""


class FaderError(Exception):
    """A failure the user can act on; its message is the whole story, on one line."""

    exit_code = 1


class UsageError(FaderError):
    """A bad option value: unknown attribute, unparsable `Name=value`, conflicting flags."""

    exit_code = 2


class InputError(FaderError):
    """An input that cannot be used: missing, unreadable, not an image, bad training data."""

    exit_code = 3


class NoFaceError(FaderError):
    """No face was found where one was needed."""

    exit_code = 4


class ModelError(FaderError):
    """A weights file or model name that cannot be used: corrupt, truncated, mismatched, unknown."""

    exit_code = 5


class DownloadError(FaderError):
    """A download failed: offline, HTTP error, timeout, checksum mismatch, no disk space."""

    exit_code = 6


class OutputError(FaderError):
    """An output cannot be written: exists without --force, unwritable folder."""

    exit_code = 7


class DeviceError(FaderError):
    """The requested device cannot be used (e.g. --device cuda on a machine without CUDA)."""

    exit_code = 8

"""Known failures, their exit codes and their codes for programs.

The CLI's error boundary turns any FaderError into one line on stderr and `exit_code`; anything
else is a bug and keeps its traceback. The codes are documented in README.md ("Exit codes").
"""

from __future__ import annotations


class FaderError(Exception):
    """A failure the user can act on; its message is the whole story, on one line.

    `code` names the failure for programs (the HTTP API answers it beside the message): each class
    has its own, and a raise site can name a more precise one (`InputError(..., code="not_an_image")`).
    """

    exit_code = 1
    code = "error"
    # One input's failure (unreadable, no face, cannot be written): a command given many reports it
    # and goes on with the others. Any other (a usage error, a model or download that cannot be had,
    # the device) would fail every input alike, so it stops the command at once.
    one_input = False

    def __init__(self, message: str = "", *, code: str | None = None):
        super().__init__(one_line(message))
        if code is not None:
            self.code = code


def reason(error: BaseException) -> str:
    """What a library's exception says, for one of our messages: its first line (at most 200
    characters), or its type's name when it says nothing."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def one_line(text: str) -> str:
    """`text` on one line: control characters a user's input may carry (a file name with a newline,
    a value typed with a tab) are shown escaped, so that a message is always exactly one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in text)


class UsageError(FaderError):
    """A bad option value: unknown attribute, unparsable `Name=value`, conflicting flags."""

    exit_code = 2
    code = "bad_value"


class InputError(FaderError):
    """An input that cannot be used: missing, unreadable, not an image, bad training data."""

    exit_code = 3
    code = "bad_input"
    one_input = True


class NoFaceError(FaderError):
    """No face was found where one was needed."""

    exit_code = 4
    code = "no_face"
    one_input = True


class ModelError(FaderError):
    """A weights file or model name that cannot be used: corrupt, truncated, mismatched, unknown."""

    exit_code = 5
    code = "bad_model"


class DownloadError(FaderError):
    """A download failed: offline, HTTP error, timeout, checksum mismatch, no disk space."""

    exit_code = 6
    code = "download_failed"


class OutputError(FaderError):
    """An output cannot be written: exists without --force, unwritable folder."""

    exit_code = 7
    code = "cannot_write"
    one_input = True


class DeviceError(FaderError):
    """The requested device cannot be used (e.g. --device cuda on a machine without CUDA)."""

    exit_code = 8
    code = "no_device"


def from_exit_code(message: str, exit_code: int) -> FaderError:
    """The error that a message and an exit code stand for, as another process (a Ray actor) reported it."""
    for kind in (UsageError, InputError, NoFaceError, ModelError, DownloadError, OutputError, DeviceError):
        if kind.exit_code == exit_code:
            return kind(message)
    return FaderError(message)


class MissingExtraError(UsageError, ImportError):
    """An optional part of fader whose packages are not installed (an extra: `fadercli[video]`).
    Also an ImportError, so that code importing fader's modules can test for it the usual way."""

    code = "missing_extra"


# The optional parts: what each needs (import names), and what it is for, as the message says it.
EXTRAS = {
    "serve": (("fastapi", "uvicorn", "multipart", "websockets"), "fader serve"),
    "video": (("av",), "video (clips, and sweeps saved as .mp4 or .webm)"),
    "hub": (("huggingface_hub",), "the Hugging Face Hub (hf:// models, fader push)"),
    "tensorboard": (("tensorboard",), "--log tensorboard"),
    "plot": (("matplotlib",), "drawing training curves"),
    "ray": (("ray",), "--engine ray"),
    "heif": (("pillow_heif",), "reading and writing HEIC/HEIF photos"),
    "onnx": (("onnx", "onnxruntime"), "ONNX models (fader export --format onnx, fader edit --engine onnx)"),
}


def import_extra(module: str, extra: str):
    """`import module`, where the module comes with `extra`: its absence is one line that says which
    extra to install (MissingExtraError, exit code 2), not a traceback."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        if error.name is None or error.name.split(".")[0] != module.split(".")[0]:
            raise  # the package is there but broken: its own error says more
        raise MissingExtraError(
            f"{EXTRAS[extra][1]} needs the '{extra}' extra ({module} is not installed): pip install 'fadercli[{extra}]'"
        ) from None

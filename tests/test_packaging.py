"""The installed command: entry points, version, start-up imports, CI wiring."""

import re
import subprocess
import sys
from pathlib import Path

from fadercli import __version__

ROOT = Path(__file__).resolve().parents[1]


def _imported_modules(*args: str) -> set[str]:
    """Top-level modules a fresh interpreter imports to run `python -m fadercli ARGS`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "fadercli", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", result.stderr, flags=re.M)
    assert names, "no import trace: is -X importtime broken?"
    return {n.split(".")[0] for n in names}


def test_help_imports_neither_torch_nor_cv2_nor_av():
    commands = (
        ["info"],
        ["models"],
        ["models", "list"],
        ["align"],
        ["train"],
        ["eval"],
        ["demo"],
        ["edit"],
        ["sweep"],
        ["inspect"],
        ["serve"],
        ["plot"],
        ["export"],
        ["push"],
    )
    for args in (["--help"], ["--version"], *([*c, "--help"] for c in commands)):
        modules = _imported_modules(*args)
        assert "typer" in modules  # the trace is real
        heavy = {"torch", "cv2", "numpy", "PIL", "av", "fastapi", "starlette", "uvicorn", "pydantic", "ray"}
        assert not modules & (
            heavy | {"matplotlib", "huggingface_hub", "tensorboard", "pyarrow", "pillow_heif", "onnx", "onnxruntime"}
        ), args


def test_console_script_and_module_entry_points():
    fader = Path(sys.executable).with_name("fader")
    out = subprocess.run([str(fader), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"fader {__version__}"
    out = subprocess.run([sys.executable, "-m", "fadercli", "--help"], capture_output=True, text=True, check=True)
    assert "info" in out.stdout and "Usage" in out.stdout


def test_no_arguments_shows_help_and_fails(run_cli):
    result = run_cli()
    assert result.exit_code != 0
    assert "Usage" in result.stdout + result.stderr


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^(python -m pytest.*)$", readme, flags=re.M)
    assert len(commands) == 1, commands
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert commands[0] in ci_lines
    assert "python -m pip install torch==2.13.0" in ci_lines
    assert ci_lines.index("python -m pip install torch==2.13.0") < ci_lines.index(commands[0])

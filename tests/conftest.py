"""Shared test fixtures. Test inputs come from ../shared (see its SOURCES.md) or are made here."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
YUNET = SHARED / "models" / "face_detection_yunet_2026may.onnx"


@pytest.fixture(scope="session", autouse=True)
def _local_face_detector():
    """Tests use the shared copy of YuNet, never a download (subprocesses inherit it too)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FADER_DETECTOR_MODEL", str(YUNET))
        yield


@pytest.fixture
def run_cli():
    """Invoke `fader ARGS...` in-process; the result has exit_code, stdout and stderr apart."""
    from fadercli.cli import app

    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return run

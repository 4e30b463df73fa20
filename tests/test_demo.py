"""`fader demo`: offline end to end. The full-length run (its acceptance: <= 5 minutes, swap
accuracy >= 90% per toy attribute) is a benchmark: `python -m pytest -m benchmark tests/test_demo.py`."""

import json

import pytest
from PIL import Image

from fadercli.train import toyfaces


def _run(run_cli, tmp_path, *extra):
    result = run_cli("demo", "--out", tmp_path / "demo", "--device", "cpu", "--json", "--quiet", *extra)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_a_short_demo_writes_its_sweep_and_scores(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("FADER_HOME", str(tmp_path / "home"))
    summary = _run(run_cli, tmp_path, "--minutes", "0.4", "--faces", "300")
    assert set(summary["swap_accuracy"]) == set(toyfaces.ATTRIBUTES)
    assert summary["seconds"] < 0.4 * 60 + 30  # the budget, plus writing the sweep
    with Image.open(summary["sweep"]) as gif:
        assert gif.format == "GIF" and gif.n_frames == 2 * 9 - 2  # 9 steps, bouncing
        assert gif.size[0] > 96 and gif.size[1] > 96
    assert (tmp_path / "demo" / "summary.json").is_file()
    assert (tmp_path / "demo" / "run" / "model.safetensors").is_file()


@pytest.mark.benchmark
def test_the_full_demo_meets_its_promise(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("FADER_HOME", str(tmp_path / "home"))
    summary = _run(run_cli, tmp_path)
    assert summary["seconds"] <= 5 * 60
    every_direction = [v for by in summary["swap_accuracy"].values() for v in by.values()]
    assert min(every_direction) >= 0.9, summary["swap_accuracy"]


def test_the_style_choices_are_the_renderers_styles():
    """`fader demo --style` lists fixed choices without importing the renderer (fader --help stays light)."""
    from fadercli.choices import TOY_STYLES

    assert tuple(toyfaces.STYLES) == TOY_STYLES

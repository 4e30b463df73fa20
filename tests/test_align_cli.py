"""`fader align`: crops, JSON records, the debug view, and how it fails."""

import json
import os

import numpy as np
import pytest
from conftest import DATA
from PIL import Image

from fadercli.errors import InputError, NoFaceError, OutputError
from fadercli.faces import DEFAULT_THRESHOLD, template

ASTRONAUT = DATA / "astronaut.png"
COFFEE = DATA / "coffee.png"


def _json_lines(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_align_writes_the_crop_and_a_record_per_face(run_cli, tmp_path):
    result = run_cli("align", ASTRONAUT, "--out-dir", tmp_path, "--json")
    assert result.exit_code == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["astronaut_face0.png"]
    with Image.open(tmp_path / "astronaut_face0.png") as crop:
        assert crop.size == (256, 256) and crop.mode == "RGB"
    [record] = _json_lines(result.stdout)
    assert record["input"] == str(ASTRONAUT) and record["output"] == str(tmp_path / "astronaut_face0.png")
    assert record["face"] == 0 and record["size"] == 256 and record["score"] >= DEFAULT_THRESHOLD
    assert len(record["box"]) == 4 and len(record["landmarks"]) == 5
    # The transform takes the photo's eyes to the template's, as anyone can check from the record.
    m = np.array(record["transform"])
    eyes = np.array(record["landmarks"][:2]) @ m[:, :2].T + m[:, 2]
    assert np.linalg.norm(eyes - template(256)[:2], axis=1).max() < 2
    assert "1 face crop(s) from 1 image(s)" in result.stderr


def test_size_and_debug_view(run_cli, tmp_path):
    result = run_cli("align", ASTRONAUT, "--out-dir", tmp_path, "--size", "128", "--debug")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert sorted(os.listdir(tmp_path)) == ["astronaut_debug.jpg", "astronaut_face0.png"]
    with Image.open(tmp_path / "astronaut_face0.png") as crop:
        assert crop.size == (128, 128)
    photo = np.asarray(Image.open(ASTRONAUT), dtype=int)
    with Image.open(tmp_path / "astronaut_debug.jpg") as debug:
        view = np.asarray(debug, dtype=int)
    assert view.shape == photo.shape
    drawn = np.abs(view - photo).max(axis=2) > 60  # JPEG noise stays well below this
    assert drawn[50:200, 150:300].sum() > 200 and not drawn[400:, :100].any()


def test_no_face_is_an_error_with_its_exit_code_and_no_output(run_cli, tmp_path):
    result = run_cli("align", COFFEE, "--out-dir", tmp_path)
    assert result.exit_code == NoFaceError.exit_code
    assert "no face found" in result.stderr and str(COFFEE) in result.stderr
    assert os.listdir(tmp_path) == []


def test_no_align_takes_the_centre_square(run_cli, tmp_path):
    result = run_cli("align", COFFEE, "--out-dir", tmp_path, "--no-align", "--json")
    assert result.exit_code == 0, result.stderr
    [record] = _json_lines(result.stdout)
    assert record["box"] is None and record["landmarks"] is None and record["score"] is None
    with Image.open(tmp_path / "coffee_face0.png") as crop:
        assert crop.size == (256, 256)
        square = Image.open(COFFEE).crop((100, 0, 500, 400))  # 600 x 400: as `fader train` takes it
        expected = np.asarray(square.resize((256, 256), Image.Resampling.BOX), dtype=int)
        assert np.abs(np.asarray(crop, dtype=int) - expected).mean() < 2


def test_a_folder_goes_on_past_failures_and_reports_the_first(run_cli, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a_coffee.png").write_bytes(COFFEE.read_bytes())
    (inputs / "b_astronaut.png").write_bytes(ASTRONAUT.read_bytes())
    (inputs / "c_notes.jpg").write_text("not an image")
    out = tmp_path / "out"
    result = run_cli("align", inputs, "--out-dir", out)
    assert result.exit_code == NoFaceError.exit_code  # the first failure's
    assert os.listdir(out) == ["b_astronaut_face0.png"]
    errors = [line for line in result.stderr.splitlines() if line.startswith("fader: error:")]
    assert len(errors) == 2 and "no face found" in errors[0] and "not an image" in errors[1]


@pytest.mark.parametrize("content", ["truncated", "text"])
def test_unreadable_inputs_are_one_line_and_an_input_error(run_cli, tmp_path, content):
    bad = tmp_path / "bad.png"
    data = ASTRONAUT.read_bytes()
    bad.write_bytes(data[: len(data) // 3] if content == "truncated" else b"hello\n")
    result = run_cli("align", bad, "--out-dir", tmp_path / "out")
    assert result.exit_code == InputError.exit_code
    [message] = [line for line in result.stderr.splitlines() if "error" in line]
    assert str(bad) in message
    assert os.listdir(tmp_path / "out") == []


def test_existing_outputs_need_force(run_cli, tmp_path):
    (tmp_path / "astronaut_face0.png").write_bytes(b"mine")
    result = run_cli("align", ASTRONAUT, "--out-dir", tmp_path)
    assert result.exit_code == OutputError.exit_code and "--force" in result.stderr
    assert (tmp_path / "astronaut_face0.png").read_bytes() == b"mine"
    assert run_cli("align", ASTRONAUT, "--out-dir", tmp_path, "--force").exit_code == 0
    with Image.open(tmp_path / "astronaut_face0.png") as crop:
        assert crop.size == (256, 256)


def test_exif_rotated_photo_is_aligned_upright(run_cli, tmp_path):
    """A photo stored sideways with an EXIF orientation: read upright, the face is found."""
    exif = Image.Exif()
    exif[0x0112] = 8  # to view, turn 90 degrees counter-clockwise: so store it turned clockwise
    Image.open(ASTRONAUT).transpose(Image.Transpose.ROTATE_270).save(tmp_path / "sideways.jpg", exif=exif, quality=95)
    result = run_cli("align", tmp_path / "sideways.jpg", "--out-dir", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.stderr
    [record] = _json_lines(result.stdout)
    (lx, ly), (rx, ry) = record["landmarks"][:2]
    assert abs(ly - ry) < 10 and rx - lx > 30  # eyes level: the photo was read upright


def test_bad_options_are_usage_errors(run_cli, tmp_path):
    assert run_cli("align", ASTRONAUT, "--out-dir", tmp_path, "--face", "biggest").exit_code == 2
    assert run_cli("align", ASTRONAUT, "--out-dir", tmp_path, "--size", "4").exit_code == 2
    result = run_cli("align", ASTRONAUT, "--out-dir", tmp_path, "--face", "3")
    assert result.exit_code == NoFaceError.exit_code and "no face 3" in result.stderr


def test_help_states_the_library_default_threshold(run_cli):
    assert f"default {DEFAULT_THRESHOLD}" in " ".join(run_cli("align", "--help").stdout.split())

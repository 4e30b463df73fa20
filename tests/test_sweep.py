"""`fader sweep`: animated GIFs and labelled grids, one encoding per face, and GIF palettes."""

import os

import numpy as np
import pytest
from conftest import DATA
from PIL import Image, ImageFilter, ImageSequence

from fadercli.api import Fader
from fadercli.errors import OutputError, UsageError
from fadercli.media.grids import CAPTION_H, PAD, grid_size, quantize
from fadercli.net.model import AutoEncoder

ASTRONAUT = DATA / "astronaut.png"


def _frames(path):
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        info = dict(gif.info)
        frames = [np.asarray(frame.convert("RGB")).astype(int) for frame in ImageSequence.Iterator(gif)]
    return frames, info


@pytest.fixture(scope="module")
def fader(toy_runs):
    return Fader.load(toy_runs["both"], device="cpu")


def test_gif_has_a_frame_per_step_of_the_documented_size(run_cli, toy_runs, fader, tmp_path):
    out = tmp_path / "out.gif"
    result = run_cli("sweep", ASTRONAUT, "--model", toy_runs["both"], "--attr", "Smiling", "--steps", "10", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(out) and "10 frames" in result.stderr
    frames, info = _frames(out)
    # One 256 x 256 cell (the 512 px photo at --max-size 256) with its caption: 1 x (256 + 2) + 2 by 1 x (256 + 14) + 2.
    assert len(frames) == 10 and {f.shape for f in frames} == {(272, 260, 3)}
    assert grid_size(1, 1, (256, 256)) == (260, 272)
    assert info["loop"] == 0 and info["duration"] == 120  # forever, at 8 frames per second (GIF: 1/100 s steps)
    # Each frame is the sweep the API makes, within what 256 colours cost (dithered: judged blurred).
    expected = fader.sweep(ASTRONAUT, "Smiling", steps=10).frames()
    for frame, want in zip(frames, expected):
        assert np.abs(frame - np.asarray(want)).mean() < 4
        assert _blurred_error(Image.fromarray(frame.astype(np.uint8)), want) < 1
    assert np.abs(frames[0] - frames[-1]).mean() > 1  # the face changes from the first step to the last
    bounced = tmp_path / "bounce.gif"
    result = run_cli(
        "sweep",
        ASTRONAUT,
        "--model",
        toy_runs["both"],
        "--attr",
        "Smiling",
        "--steps",
        "10",
        "-o",
        bounced,
        "--bounce",
        "--fps",
        "5",
    )
    assert result.exit_code == 0, result.stderr
    frames_back, info = _frames(bounced)
    assert len(frames_back) == 18 and info["duration"] == 200  # up 0..9, back down 8..1
    for k, j in enumerate([*range(10), *range(8, 0, -1)]):
        assert np.abs(frames_back[k] - frames[j]).mean() < 1.5


def test_gif_frames_are_grids_of_inputs_by_attributes(run_cli, toy_runs, tmp_path):
    small = tmp_path / "small.png"
    Image.open(ASTRONAUT).resize((300, 200)).save(small)  # another shape: cells are padded to one size
    out = tmp_path / "grid.gif"
    result = run_cli(
        "sweep",
        ASTRONAUT,
        small,
        "--no-align",
        "--model",
        toy_runs["both"],
        "--attr",
        "Smiling",
        "--attr",
        "Eyeglasses",
        "--steps",
        "3",
        "--max-size",
        "96",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.stderr
    frames, _ = _frames(out)
    assert len(frames) == 3 and frames[0].shape == (2 * (96 + 14) + 2, 2 * (96 + 2) + 2, 3)
    # The 300 x 200 input is a 96 x 64 picture centred on white in its 96 x 96 cells.
    second_row = frames[0][PAD + 96 + CAPTION_H + PAD :][:96, PAD : PAD + 96]
    assert (second_row[:14] > 245).all() and (second_row[-14:] > 245).all() and (second_row[20:76] < 245).any()


def test_png_is_a_labelled_grid_with_the_original_first(run_cli, toy_runs, tmp_path):
    out = tmp_path / "grid.png"
    result = run_cli(
        "sweep",
        ASTRONAUT,
        "--model",
        toy_runs["both"],
        "--attr",
        "Smiling",
        "--attr",
        "Eyeglasses",
        "--steps",
        "4",
        "--range",
        "-1:2",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.stderr
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == grid_size(2, 5, (256, 256)) == (5 * 258 + 2, 2 * 270 + 2)
        sheet = np.asarray(im.convert("RGB")).astype(int)
    original = np.asarray(Image.open(ASTRONAUT).convert("RGB").resize((256, 256), Image.Resampling.LANCZOS))
    for row in range(2):
        top = PAD + row * (256 + CAPTION_H + PAD)
        assert np.array_equal(sheet[top : top + 256, PAD : PAD + 256], original)
        cells = [sheet[top : top + 256, PAD + c * 258 : PAD + c * 258 + 256] for c in range(5)]
        assert all(np.abs(cells[c] - cells[c + 1]).mean() > 0.5 for c in range(1, 4))  # each step differs
        for c in range(5):  # every cell has its caption: dark text on the white strip under it
            strip = sheet[top + 256 : top + 256 + CAPTION_H, PAD + c * 258 : PAD + c * 258 + 256]
            assert (strip.max(axis=2) < 128).sum() > 20
    crops = tmp_path / "crops.jpg"
    result = run_cli(
        "sweep",
        ASTRONAUT,
        "--model",
        toy_runs["both"],
        "--attr",
        "Smiling",
        "--steps",
        "3",
        "--crop",
        "--max-size",
        "64",
        "-o",
        crops,
    )
    assert result.exit_code == 0, result.stderr
    with Image.open(crops) as im:
        assert im.format == "JPEG" and im.size == grid_size(1, 4, (64, 64))


def test_a_sweep_encodes_each_face_once(run_cli, toy_runs, tmp_path, monkeypatch):
    calls = []
    encode = AutoEncoder.encode
    monkeypatch.setattr(AutoEncoder, "encode", lambda self, x: calls.append(len(x)) or encode(self, x))
    copy = tmp_path / "copy.png"
    copy.write_bytes(ASTRONAUT.read_bytes())
    result = run_cli(
        "sweep",
        ASTRONAUT,
        copy,
        "--model",
        toy_runs["both"],
        "--attr",
        "Smiling",
        "--attr",
        "Eyeglasses",
        "--steps",
        "12",
        "-o",
        tmp_path / "out.gif",
    )
    assert result.exit_code == 0, result.stderr
    assert calls == [2]  # two faces, two attributes, 12 steps each: one encoder pass of both faces
    calls.clear()
    chained = run_cli(
        "sweep",
        ASTRONAUT,
        "-m",
        toy_runs["eyeglasses"],
        "-m",
        toy_runs["smiling"],
        "--attr",
        "Smiling",
        "--attr",
        "Eyeglasses",
        "--steps",
        "5",
        "-o",
        tmp_path / "chained.gif",
    )
    assert chained.exit_code == 0, chained.stderr
    assert calls == [1, 1]  # one face, once through each model's encoder


def test_default_range_is_the_models_recommended_one(fader, toy_runs):
    assert fader.slider_range("smiling") == (-1.0, 2.0)  # what `fader train` records: 1 - 2 .. 2
    sweep = fader.sweep(ASTRONAUT, "Smiling", steps=4, crop=True, max_size=32)
    assert np.allclose(sweep.values["Smiling"], [-1, 0, 1, 2])
    assert [sweep.label("Smiling", j) for j in range(4)] == [
        "Smiling -1.00",
        "Smiling 0.00",
        "Smiling 1.00",
        "Smiling 2.00",
    ]
    fine = fader.sweep(ASTRONAUT, "Smiling", steps=101, value_range=(0, 1), crop=True, max_size=32)
    labels = [fine.label("Smiling", j) for j in range(101)]
    assert len(set(labels)) == 101 and labels[1] == "Smiling 0.010"  # neighbours always read differently
    assert sweep.order(bounce=True) == [0, 1, 2, 3, 2, 1]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--steps", "1"], UsageError.exit_code, "--steps must be from 2 to 1000"),
        (["--range", "1"], UsageError.exit_code, "--range takes LO:HI"),
        (["--range", "1:1"], UsageError.exit_code, "two different values from -100 to 100"),
        (["--attr", "Hat"], UsageError.exit_code, "unknown attribute 'Hat'"),
        (["-o", "{tmp}/out.txt"], UsageError.exit_code, "give a .gif"),
        (["-o", "{tmp}/exists.gif"], OutputError.exit_code, "exists (use --force"),
        (["-o", "{tmp}/nowhere/out.gif"], OutputError.exit_code, "no such folder"),
    ],
)
def test_sweep_refusals(run_cli, toy_runs, tmp_path, args, code, message):
    (tmp_path / "exists.gif").write_bytes(b"old")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    defaults = {"--attr": "Smiling", "-o": str(tmp_path / "out.gif")}
    for option, value in defaults.items():
        if option not in args:
            args += [option, value]
    result = run_cli("sweep", ASTRONAUT, "--model", toy_runs["both"], *args)
    assert result.exit_code == code, result.stderr
    assert message in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["exists.gif"] and (tmp_path / "exists.gif").read_bytes() == b"old"


def _blurred_error(image, reference):
    """Mean error after a 1.5 px blur: the banding one sees, not the dithering noise one does not."""
    blur = ImageFilter.GaussianBlur(1.5)
    a = np.asarray(image.convert("RGB").filter(blur)).astype(float)
    return np.abs(a - np.asarray(reference.convert("RGB").filter(blur))).mean()


def test_gif_palettes_keep_skin_gradients_smooth():
    x, y = np.meshgrid(np.linspace(0, 1, 256), np.linspace(0, 1, 256))
    skin = np.stack([150 + 90 * x, 105 + 70 * x + 25 * y, 80 + 50 * x + 45 * y], axis=2)  # shaded skin, ~7k colours
    gradient = Image.fromarray(np.clip(skin, 0, 255).astype(np.uint8))
    photo = Image.open(ASTRONAUT).convert("RGB").resize((256, 256), Image.Resampling.LANCZOS)
    for frame in (gradient, photo):
        paletted = quantize(frame)
        assert paletted.mode == "P"
        assert _blurred_error(paletted, frame) < 0.8
    # What the alternatives do: the same palette undithered bands the gradient; median cut, Pillow's
    # default for GIF frames, bands the photo.
    octree = gradient.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    assert _blurred_error(octree, gradient) > 2 * _blurred_error(quantize(gradient), gradient)
    median = photo.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    assert _blurred_error(median, photo) > 1.5 * _blurred_error(quantize(photo), photo)

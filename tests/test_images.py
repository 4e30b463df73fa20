"""Reading and writing photos: modes, bit depths, orientation, bad files, atomic writes."""

import os
import struct
import zlib

import cv2
import numpy as np
import pytest
from conftest import DATA
from PIL import Image

from fadercli.errors import InputError, OutputError
from fadercli.media.formats import expand_inputs
from fadercli.media.images import LUMA, Photo, from_array, from_pil, read_image
from fadercli.media.writing import save_image, to_pil

ASTRONAUT = DATA / "astronaut.png"
RNG = np.random.default_rng(5)


def _noise(shape, dtype=np.uint8):
    return RNG.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True, dtype=dtype)


def _round_trip(photo, path):
    save_image(photo, path)
    return read_image(path)


def test_rgb_png_reads_and_writes_back_bit_identical(tmp_path):
    photo = read_image(ASTRONAUT)
    assert (photo.width, photo.height, photo.mode, photo.bits, photo.format) == (512, 512, "RGB", 8, "PNG")
    assert np.array_equal(photo.pixels, np.asarray(Image.open(ASTRONAUT)))
    again = _round_trip(photo, tmp_path / "out.png")
    assert np.array_equal(again.pixels, photo.pixels)
    assert os.listdir(tmp_path) == ["out.png"]  # no temporary file left behind


def test_greyscale_stays_greyscale(tmp_path):
    grey = _noise((20, 30))
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    photo = read_image(tmp_path / "grey.png")
    assert photo.mode == "L" and photo.pixels.shape == (20, 30, 1)
    assert np.array_equal(photo.rgb8(), np.repeat(grey[..., None], 3, axis=2))
    save_image(photo, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as out:
        assert out.mode == "L" and np.array_equal(np.asarray(out), grey)


def test_16bit_greyscale_png_keeps_16_bits(tmp_path):
    deep = _noise((16, 24), np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    photo = read_image(tmp_path / "deep.png")
    assert (photo.mode, photo.bits) == ("L", 16)
    assert np.array_equal(photo.pixels[..., 0], deep)
    save_image(photo, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as out:
        assert out.mode.startswith("I") and np.array_equal(np.asarray(out), deep)


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_png_is_not_cut_to_8_bits(tmp_path, channels):
    bgr = _noise((12, 18, channels), np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), bgr)
    photo = read_image(tmp_path / "deep.png")
    assert (photo.mode, photo.bits) == ("RGB", 16)
    assert np.array_equal(photo.pixels, bgr[..., 2::-1])
    if channels == 4:
        assert np.array_equal(photo.alpha, bgr[..., 3])
    save_image(photo, tmp_path / "out.png")
    assert np.array_equal(cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED), bgr)
    # A format without 16-bit colour gets the nearest 8-bit values.
    save_image(photo, tmp_path / "out.tif")
    assert np.abs(np.asarray(Image.open(tmp_path / "out.tif"))[..., :3] * 257.0 - photo.pixels).max() <= 128.5


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_kept_apart_and_written_back(tmp_path, mode):
    array = _noise((10, 14, len(mode)))
    Image.fromarray(array, mode).save(tmp_path / "alpha.png")
    photo = read_image(tmp_path / "alpha.png")
    assert np.array_equal(photo.alpha, array[..., -1])
    assert photo.pixels.shape[2] == len(mode) - 1
    save_image(photo, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as out:
        assert out.mode == mode and np.array_equal(np.asarray(out), array)


def test_palette_images_become_rgb_and_gifs_keep_their_palette(tmp_path):
    rgb = np.asarray(Image.open(ASTRONAUT).resize((64, 64)))
    Image.fromarray(rgb).quantize(32).save(tmp_path / "pal.gif")
    photo = read_image(tmp_path / "pal.gif")
    assert (photo.mode, photo.source_mode, photo.alpha) == ("RGB", "P", None)
    expected = np.asarray(Image.open(tmp_path / "pal.gif").convert("RGB"))
    assert np.array_equal(photo.pixels, expected)
    save_image(photo, tmp_path / "out.gif")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.gif").convert("RGB")), expected)


def test_palette_png_with_transparency_gets_an_alpha_channel(tmp_path):
    indices = np.tile(np.arange(4, dtype=np.uint8), (4, 1))
    im = Image.fromarray(indices, "P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    im.save(tmp_path / "pal.png", transparency=3)
    photo = read_image(tmp_path / "pal.png")
    assert photo.mode == "RGB"
    assert photo.alpha.tolist() == [[255, 255, 255, 0]] * 4
    assert photo.pixels[0, 1].tolist() == [0, 255, 0]


def test_cmyk_keeps_its_ink_and_converts_to_rgb_as_pillow_does(tmp_path):
    cmyk = _noise((8, 8, 4))
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "ink.tif")
    photo = read_image(tmp_path / "ink.tif")
    assert photo.mode == "CMYK"
    pillow_rgb = np.asarray(Image.fromarray(cmyk, "CMYK").convert("RGB"))
    assert np.abs(photo.rgb8().astype(int) - pillow_rgb).max() <= 1
    assert np.array_equal(_round_trip(photo, tmp_path / "out.tif").pixels, cmyk)


@pytest.mark.parametrize(
    "mode,channels,dtype", [("RGB", 3, np.uint8), ("L", 1, np.uint8), ("L", 1, np.uint16), ("CMYK", 4, np.uint8)]
)
def test_an_rgb_change_lands_in_the_photo_own_values(mode, channels, dtype):
    """add_change turns a change given in RGB into the colour model's own values, only where asked."""
    scale = 257 if dtype == np.uint16 else 1
    pixels = (RNG.integers(60, 190, size=(6, 6, channels)) * scale).astype(dtype)
    if mode == "CMYK":
        pixels[..., 3] //= 2  # ink the change can still be expressed on (k = 255 is black whatever c is)
    photo = Photo(pixels.copy(), mode)
    before = photo.rgb()
    change = np.zeros((6, 6, 3), np.float32)
    change[2:4, 2:4] = [0.1, -0.05, 0.02]
    where = np.zeros((6, 6), bool)
    where[1:5, 1:5] = True
    photo.add_change(change, (0, 0, 6, 6), where)
    expected = np.repeat(change @ LUMA, 3).reshape(6, 6, 3) if mode == "L" else change
    assert np.abs(photo.rgb() - before - expected).max() < 2 / 255
    assert np.array_equal(photo.pixels[~where], pixels[~where])
    assert not np.array_equal(photo.pixels, pixels)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "I;16", "CMYK"])
def test_pillow_images_go_in_and_come_out_unchanged(mode):
    im = Image.open(ASTRONAUT).convert("RGBA" if mode == "RGBA" else "RGB")
    im = Image.fromarray(np.asarray(im.convert("L"), np.uint16) * 257) if mode == "I;16" else im.convert(mode)
    back = to_pil(from_pil(im))
    assert back.mode == mode and np.array_equal(np.asarray(back), np.asarray(im))


def test_exif_orientation_is_applied(tmp_path):
    rgb = _noise((10, 20, 3))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: turn 90 degrees clockwise to view
    Image.fromarray(rgb).save(tmp_path / "turned.png", exif=exif)
    photo = read_image(tmp_path / "turned.png")
    assert np.array_equal(photo.pixels, np.rot90(rgb, -1))
    save_image(photo, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as out:  # written upright, without the orientation tag
        assert out.size == (10, 20) and out.getexif().get(0x0112) in (None, 1)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_exif_orientation_applies_to_16bit_colour_too(tmp_path):
    bgr = _noise((6, 10, 3), np.uint16)
    data = cv2.imencode(".png", bgr)[1].tobytes()
    exif = Image.Exif()
    exif[0x0112] = 8  # turn 90 degrees counter-clockwise to view
    ihdr_end = 8 + 25  # signature, then the IHDR chunk
    data = data[:ihdr_end] + _png_chunk(b"eXIf", exif.tobytes()) + data[ihdr_end:]
    (tmp_path / "turned16.png").write_bytes(data)
    photo = read_image(tmp_path / "turned16.png")
    assert photo.bits == 16
    assert np.array_equal(photo.pixels, np.rot90(bgr[..., ::-1], 1))


def _assert_one_line_input_error(path, match):
    with pytest.raises(InputError, match=match) as e:
        read_image(path)
    assert "\n" not in str(e.value)


def test_missing_non_image_and_truncated_files_are_one_line_input_errors(tmp_path):
    _assert_one_line_input_error(tmp_path / "nope.png", "no such file")
    (tmp_path / "notes.png").write_text("not a picture\n")
    _assert_one_line_input_error(tmp_path / "notes.png", "not an image")
    data = ASTRONAUT.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    _assert_one_line_input_error(tmp_path / "cut.png", "cannot decode")
    _assert_one_line_input_error(tmp_path, "is a folder")


def test_decompression_bombs_are_refused_before_decoding(tmp_path):
    """A PNG header claiming 30000 x 30000 pixels (900 M) with almost no data behind it."""

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    chunks = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"")) + _png_chunk(b"IEND", b"")
    data = b"\x89PNG\r\n\x1a\n" + chunks
    (tmp_path / "bomb.png").write_bytes(data)
    _assert_one_line_input_error(tmp_path / "bomb.png", "decompression bomb")


def test_save_refuses_unknown_formats_and_missing_folders(tmp_path):
    photo = from_array(_noise((4, 4, 3)))
    with pytest.raises(OutputError, match="cannot write the format"):
        save_image(photo, tmp_path / "out.png", format="NOPE")
    with pytest.raises(OutputError, match="no such folder"):
        save_image(photo, tmp_path / "missing" / "out.png")
    save_image(photo, tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.format == "JPEG"
    assert sorted(os.listdir(tmp_path)) == ["out.jpg"]


def test_inputs_expand_folders_and_patterns(tmp_path):
    for name in ("b.png", "a.jpg", ".hidden.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    assert expand_inputs([tmp_path]) == [tmp_path / "a.jpg", tmp_path / "b.png"]
    assert expand_inputs([str(tmp_path / "*.png")]) == [tmp_path / "b.png"]
    assert expand_inputs([tmp_path / "notes.txt"]) == [tmp_path / "notes.txt"]  # named files are taken as given
    with pytest.raises(InputError, match="no such file"):
        expand_inputs([tmp_path / "missing.png"])
    with pytest.raises(InputError, match="no file matches"):
        expand_inputs([str(tmp_path / "*.gif")])

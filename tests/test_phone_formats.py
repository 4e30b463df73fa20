"""Photos as phones save them: HEIC/HEIF (pillow-heif, the `heif` extra) and AVIF (Pillow's own) are
read through the same gate as every photo, edited to the same pixels as a PNG of the same picture,
and written back in their own format with their size, orientation and ICC profile."""

from __future__ import annotations

import io
import struct
import subprocess
import sys

import corpus
import numpy as np
import pytest
from conftest import DATA, ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageOps
from test_extras import WITHOUT_EXTRAS

from fadercli.errors import InputError
from fadercli.media import heif
from fadercli.media.formats import expand_inputs, output_format
from fadercli.media.images import decode_image, read_image
from fadercli.media.writing import save_image

PORTRAIT = DATA / "grace_hopper.jpg"  # 512 x 600: a turn shows
FORMATS = {"HEIF": ".heic", "AVIF": ".avif"}
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _upright() -> np.ndarray:
    with Image.open(PORTRAIT) as im:
        return np.asarray(im.convert("RGB"))


def _as_phone_saves_it(fmt: str, path) -> np.ndarray:
    """The portrait stored turned, with EXIF orientation 6 to show it upright (as phones do), and an ICC
    profile; returns the upright pixels as fader reads them."""
    heif.require(fmt)
    stored = Image.fromarray(_upright()).transpose(Image.Transpose.ROTATE_90)  # orientation 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, format=fmt, quality=92, icc_profile=ICC, exif=exif.tobytes())
    return read_image(path).pixels


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_phone_photos_are_read_upright_with_their_profile(tmp_path, fmt):
    path = tmp_path / f"IMG_0421{FORMATS[fmt]}"
    pixels = _as_phone_saves_it(fmt, path)
    photo = read_image(path)
    assert (photo.format, photo.width, photo.height, photo.mode, photo.bits) == (fmt, 512, 600, "RGB", 8)
    assert _psnr(pixels, _upright()) > 38  # the codec's loss only: turned the wrong way it would be ~12 dB
    assert photo.info["icc_profile"] == ICC
    assert decode_image(path.read_bytes(), "upload").pixels.tobytes() == pixels.tobytes()


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_edit_of_a_phone_photo_is_the_edit_of_its_png(run_cli, toy_runs, tmp_path, fmt):
    phone = tmp_path / f"IMG_0421{FORMATS[fmt]}"
    pixels = _as_phone_saves_it(fmt, phone)
    png = tmp_path / "same.png"
    Image.fromarray(pixels).save(png, icc_profile=ICC)
    for source in (phone, png):
        result = run_cli("edit", source, "--model", toy_runs["both"], "--set", "Eyeglasses=2", "--out-dir", tmp_path)
        assert result.exit_code == 0, result.stderr
    out = tmp_path / f"IMG_0421_fader{FORMATS[fmt]}"
    with Image.open(out) as im:
        assert im.format == fmt and im.size == (512, 600) and im.info["icc_profile"] == ICC
        assert im.getexif().get(0x0112, 1) == 1  # the turn applied, and said so
        edited = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    expected = np.asarray(Image.open(tmp_path / "same_fader.png"))
    changed = np.abs(expected.astype(int) - pixels).max(axis=2) > 8
    assert changed.sum() > 2000  # the face was edited: the comparison below is not of two untouched photos
    assert _psnr(edited, expected) > 38  # the same edit, within the codec's loss
    assert _psnr(edited[changed], expected[changed]) > 35


@pytest.mark.parametrize("name", ["heic", "avif"])
def test_format_writes_a_phone_format_from_any_photo(run_cli, toy_runs, tmp_path, name):
    result = run_cli(
        "edit", PORTRAIT, "--model", toy_runs["both"], "--set", "Smiling=1", "--out-dir", tmp_path, "--format", name
    )
    assert result.exit_code == 0, result.stderr
    out = tmp_path / f"grace_hopper_fader.{name}"
    assert read_image(out).format == {"heic": "HEIF", "avif": "AVIF"}[name]
    assert output_format("HEIF") == ("HEIF", ".heic") and output_format("avif") == ("AVIF", ".avif")


def test_sequences_give_their_first_frame_and_10_bits_are_read_at_8(tmp_path):
    upright = _upright()[:256, :256]
    frames = [Image.fromarray(upright), Image.fromarray(upright[::-1]), Image.fromarray(upright[:, ::-1])]
    for fmt, ext in FORMATS.items():
        heif.require(fmt)
        path = tmp_path / f"burst{ext}"
        frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], quality=92)
        with Image.open(path) as im:
            assert im.n_frames == 3
        assert _psnr(read_image(path).pixels, upright) > 38  # the first frame, not the flipped ones
    import pillow_heif

    # 10 bits in the file, PQ (SMPTE 2084) as its transfer: read as the decoder scales it to 8 bits.
    deep = pillow_heif.from_bytes("RGB;16", (256, 256), (upright.astype(np.uint16) * 257).tobytes())
    buffer = io.BytesIO()
    deep.save(buffer, format="HEIF", quality=92, chroma=444)
    data = corpus.as_hdr(buffer.getvalue())
    with Image.open(io.BytesIO(data)) as im:
        assert im.info["bit_depth"] == 10 and im.info["nclx_profile"]["transfer_characteristics"] == 16
    photo = decode_image(data, "hdr.heic")
    assert photo.bits == 8 and _psnr(photo.pixels, upright) > 38
    save_image(photo, tmp_path / "back.heic")  # its colour description goes along: viewers show it alike
    with Image.open(tmp_path / "back.heic") as im:
        assert im.info["nclx_profile"]["transfer_characteristics"] == 16 and im.info["bit_depth"] == 8


def test_hostile_phone_files_are_one_line_and_bounded(tmp_path):
    for name, data in corpus.phone_corpus().items():
        with pytest.raises(InputError) as caught:
            decode_image(data, name)
        assert "\n" not in str(caught.value) and str(caught.value).startswith(f"{name}: ")
        assert caught.value.code in ("too_many_pixels", "unreadable_image"), (name, caught.value)
    huge = corpus.phone_corpus()["heic_12000.heic"]
    with pytest.raises(InputError, match=r"12000 x 12000 pixels \(144.0 MP\)"):
        decode_image(huge, "huge.heic")
    with pytest.raises(InputError, match="Non-existing item ID"):
        decode_image(corpus.phone_corpus()["thumbnail_only.heic"], "thumbnail_only.heic")
    # A file a decoder reads whole is bounded in bytes by the pixel limit (16-bit RGB, uncompressed).
    from fadercli.limits import Limits

    padded = corpus.phone_photo("AVIF") + bytes(700_000)
    with pytest.raises(InputError, match="more than an uncompressed 0.1 MP photo") as caught:
        decode_image(padded, "padded.avif", limits=Limits.of(0.1))
    assert caught.value.code == "too_large"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(sorted(FORMATS)),
    cut=st.integers(0, 4000),
    flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(1, 255)), max_size=6),
)
def test_damaged_phone_files_are_read_or_refused_in_one_line(fmt, cut, flips):
    data = bytearray(_SMALL[fmt])
    for at, value in flips:
        if at < len(data):
            data[at] ^= value
    data = bytes(data[: len(data) - cut])
    try:
        photo = decode_image(data, "damaged")
    except InputError as e:
        assert "\n" not in str(e) and str(e).startswith("damaged: ")
    else:
        assert photo.pixels.shape[2] == 3 and photo.width * photo.height <= 96 * 96


_SMALL = {fmt: corpus.phone_photo(fmt, 48) for fmt in FORMATS}


def test_folders_and_training_sets_take_phone_photos(tmp_path):
    heic, avif = tmp_path / "a.HEIC", tmp_path / "b.avif"
    heic.write_bytes(corpus.phone_photo("HEIF"))
    avif.write_bytes(corpus.phone_photo("AVIF"))
    assert expand_inputs([tmp_path]) == [heic, avif]
    from fadercli.train.images import Preprocess, load_image

    for path in (heic, avif):
        image = load_image(path, Preprocess(32))
        assert image.shape == (32, 32, 3) and 40 < image.mean() < 220


def test_heif_is_loaded_only_when_a_heif_file_is_met():
    script = (
        "import sys\n"
        "from fadercli.media.images import read_image\n"
        f"read_image({str(DATA / 'astronaut.png')!r})\n"
        "print('pillow_heif' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False"]


def test_without_the_extra_a_heic_names_it_and_avif_still_reads(tmp_path, toy_runs):
    heic, avif = tmp_path / "IMG_0421.heic", tmp_path / "IMG_0422.avif"
    heic.write_bytes(corpus.phone_photo("HEIF"))
    avif.write_bytes(corpus.phone_photo("AVIF", 256))
    hide = WITHOUT_EXTRAS.replace('"tensorboard",', '"tensorboard", "pillow_heif",')
    assert hide != WITHOUT_EXTRAS

    def run(*args):
        return subprocess.run(
            [sys.executable, "-c", hide, *map(str, args)], capture_output=True, text=True, cwd=tmp_path, timeout=120
        )

    refused = run("edit", heic, "--model", toy_runs["both"], "--set", "Smiling=1", "--out-dir", tmp_path / "out")
    lines = [line for line in refused.stderr.splitlines() if not line.startswith("fader: device:")]
    assert refused.returncode == 2 and lines == [
        "fader: error: reading and writing HEIC/HEIF photos needs the 'heif' extra (pillow_heif is not installed):"
        " pip install 'fadercli[heif]'"
    ], refused.stderr
    assert not (tmp_path / "out" / "IMG_0421_fader.heic").exists()
    edited = run("edit", avif, "--model", toy_runs["both"], "--set", "Smiling=1", "--out-dir", tmp_path / "out")
    assert edited.returncode == 0, edited.stderr
    assert (tmp_path / "out" / "IMG_0422_fader.avif").exists()


def test_the_box_patch_really_claims_the_size():
    """The corpus' huge HEIF is the small one with only its header changed."""
    small, huge = corpus.phone_photo("HEIF"), corpus.phone_corpus()["heic_100000.heic"]
    at = small.find(b"ispe")
    assert struct.unpack(">II", huge[at + 8 : at + 16]) == (100_000, 100_000) and len(huge) == len(small)

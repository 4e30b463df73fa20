"""A corpus of hostile and malformed inputs, made by the tests: damaged photos and clips, files of
other kinds named as photos, and headers that claim far more pixels than they hold.

Every file here must be refused by fader in one line (an input error; for the valid oddities of
phone_oddities, no face), never decoded at length, never handed to another program (Ghostscript
for PostScript) and never written as an output.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent
ASSETS = ROOT / "data"


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(width: int, height: int, depth: int = 8, colour: int = 2) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))


def png_bomb(width: int = 12000, height: int = 12000) -> bytes:
    """A valid 16-bit RGBA PNG of zeros, width x height: about a megabyte that decodes to gigabytes
    (12000 x 12000 is 1.15 GB of samples, under Pillow's own bomb limit)."""
    row = bytes(1 + width * 8)  # filter byte, then 8 bytes per RGBA16 pixel
    packer = zlib.compressobj(9)
    parts = [packer.compress(row) for _ in range(height)]
    parts.append(packer.flush())
    return png_header(width, height, 16, 6) + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b"")


def photo_bytes(fmt: str, size: int = 96, **options) -> bytes:
    """A small real photo (the test portrait, resized) in a format Pillow writes."""
    with Image.open(ASSETS / "grace_hopper.jpg") as im:
        image = im.convert("RGB").resize((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def flipped(data: bytes, seed: int, span: int = 64, flips: int = 6) -> bytes:
    """`data` with `flips` random bytes of its first `span` changed."""
    rng = np.random.default_rng(seed)
    out = bytearray(data)
    for at in rng.integers(0, min(span, len(out)), flips):
        out[at] ^= int(rng.integers(1, 256))
    return bytes(out)


EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n%%EndComments\n"
    b"(/tmp/fader-was-here) (w) file closefile\nnewpath 0 0 moveto 64 64 lineto stroke showpage\n%%EOF\n"
)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>'


def psd(width: int = 8, height: int = 8) -> bytes:
    """A minimal Photoshop file (Pillow reads PSD; fader must not)."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    return header + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0) + bytes(3 * width * height)


def ico() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 100, 50)).save(buffer, format="ICO")
    return buffer.getvalue()


def huge_headers() -> dict[str, bytes]:
    """Headers of allowed formats that claim enormous pictures, with next to no data behind them."""
    gif = (
        b"GIF89a"
        + struct.pack("<HHBBB", 65000, 65000, 0, 0, 0)
        + b",\0\0\0\0"
        + struct.pack("<HH", 65000, 65000)
        + b"\0\x02\x02\x44\x01\0;"
    )
    bmp_info = struct.pack("<IiiHHIIiiII", 40, 50000, 50000, 1, 24, 0, 0, 0, 0, 0, 0)
    bmp = b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 14 + 40) + bmp_info + bytes(16)
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, 60000, 60000, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    jpeg = b"\xff\xd8" + sof + b"\xff\xd9"
    tiff_entries = [
        (256, 4, 1, 100000),
        (257, 4, 1, 100000),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 8),
        (277, 3, 1, 1),
        (278, 4, 1, 100000),
        (279, 4, 1, 10),
    ]
    ifd = struct.pack("<H", len(tiff_entries)) + b"".join(struct.pack("<HHII", *e) for e in tiff_entries) + bytes(4)
    tiff = b"II*\0" + struct.pack("<I", 8) + ifd
    ppm = b"P6\n40000 40000\n255\n" + bytes(64)
    return {
        "png_30000.png": png_header(30000, 30000) + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b""),
        "png16_12000_cut.png": png_header(12000, 12000, 16, 6) + png_chunk(b"IDAT", zlib.compress(bytes(4096))),
        "gif_65000.gif": gif,
        "bmp_50000.bmp": bmp,
        "jpeg_60000.jpg": jpeg,
        "tiff_100000.tif": tiff,
        "ppm_40000.ppm": ppm,
    }


def phone_photo(fmt: str, size: int = 96, **options) -> bytes:
    """The test portrait, resized, as AVIF or HEIF (HEIF through fader's own registration of pillow-heif)."""
    from fadercli.media import heif

    heif.require(fmt)
    return photo_bytes(fmt, size, **options)


def with_box_sizes(data: bytes, width: int, height: int) -> bytes:
    """A HEIF or AVIF file whose `ispe` boxes (each image's size in the header) claim width x height."""
    out, at = bytearray(data), data.find(b"ispe")
    assert at > 0, "no ispe box"
    while at > 0:
        out[at + 8 : at + 16] = struct.pack(">II", width, height)  # after the box type: version/flags, w, h
        at = data.find(b"ispe", at + 4)
    return bytes(out)


def with_primary_missing(data: bytes) -> bytes:
    """A HEIF file whose primary-item box names an item that is not there: its thumbnail is left alone."""
    at = data.find(b"pitm")
    return data[: at + 8] + struct.pack(">H", 999) + data[at + 10 :]


def as_hdr(data: bytes) -> bytes:
    """A HEIF file whose colour description (`colr` box, nclx) says BT.2020 primaries and PQ transfer."""
    at = data.find(b"colrnclx")
    return data[: at + 8] + struct.pack(">HH", 9, 16) + data[at + 12 :]


def phone_oddities() -> dict[str, bytes]:
    """Valid HEIF and AVIF files of kinds phones make, without a face (the photo without a person):
    image sequences (fader reads the first frame) and a 10-bit PQ ("HDR") photo (read at 8 bits)."""
    from fadercli.media import heif

    heif.require("HEIF")
    import pillow_heif

    with Image.open(ASSETS / "coffee.png") as im:
        cup = im.convert("RGB").resize((120, 80))
    files = {}
    for fmt, ext in (("AVIF", "avif"), ("HEIF", "heic")):
        buffer = io.BytesIO()
        cup.save(buffer, format=fmt, save_all=True, append_images=[cup.rotate(90), cup.rotate(180)])
        files[f"sequence_{ext}.{ext}"] = buffer.getvalue()
    deep = pillow_heif.from_bytes("RGB;16", cup.size, (np.asarray(cup).astype(np.uint16) * 257).tobytes())
    buffer = io.BytesIO()
    deep.save(buffer, format="HEIF")
    files["hdr10.heic"] = as_hdr(buffer.getvalue())
    return files


def phone_corpus() -> dict[str, bytes]:
    """Hostile HEIF and AVIF files (AVIF through Pillow's own plugin, HEIF through pillow-heif)."""
    avif, heic = phone_photo("AVIF"), phone_photo("HEIF")
    return {
        "heic_100000.heic": with_box_sizes(heic, 100_000, 100_000),  # over Pillow's own ceiling
        "heic_12000.heic": with_box_sizes(heic, 12_000, 12_000),  # over fader's 100 MP
        "avif_100000.avif": with_box_sizes(avif, 100_000, 100_000),
        "truncated_avif.avif": avif[: len(avif) // 2],
        "truncated_heic.heic": heic[: len(heic) // 2],
        "header_only_heic.heic": heic[:300],
        "thumbnail_only.heic": with_primary_missing(phone_photo("HEIF", thumbnails=[32])),
        "flipped_avif.avif": flipped(avif, 7, span=400, flips=8),
        "flipped_heic.heic": flipped(heic, 7, span=400, flips=8),
    }


def photo_corpus(folder: Path) -> list[Path]:
    """Write the photo part of the corpus into `folder`; return the files."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    for fmt, ext in (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif")):
        data = photo_bytes(fmt)
        files[f"truncated_{fmt.lower()}.{ext}"] = data[: len(data) // 3]
        files[f"header_only_{fmt.lower()}.{ext}"] = data[:30]
        for seed in range(3):
            files[f"flipped{seed}_{fmt.lower()}.{ext}"] = flipped(data, seed)
    files |= {
        "postscript.png": EPS,
        "postscript.jpg": EPS,
        "binary_eps.png": b"\xc5\xd0\xd3\xc6" + struct.pack("<IIIIII", 30, len(EPS), 0, 0, 0, 0) + b"\xff\xff" + EPS,
        "document.jpg": PDF,
        "drawing.png": SVG,
        "icon.jpg": ico(),
        "layers.png": psd(),
        "empty.jpg": b"",
        "zeros.png": bytes(4096),
        "text.webp": b"this is not an image at all\n" * 10,
    }
    files |= huge_headers()
    files |= phone_corpus() | phone_oddities()
    paths = []
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def clip_corpus(folder: Path, good: Path) -> list[Path]:
    """Damaged clips made from the real clip `good`, and non-video files named as clips."""
    folder.mkdir(parents=True, exist_ok=True)
    data = good.read_bytes()
    files = {
        "truncated_header.mp4": data[:200],
        "flipped0.mp4": flipped(data, 0, span=256, flips=24),
        "flipped1.mp4": flipped(data, 1, span=256, flips=24),
        "playlist.mp4": b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
        "list.mkv": b"ffconcat version 1.0\nfile " + str(good).encode() + b"\n",
        "huge.y4m": b"YUV4MPEG2 W20000 H20000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(1024),
        "postscript.mov": EPS,
    }
    paths = []
    for name, body in files.items():
        path = folder / name
        path.write_bytes(body)
        paths.append(path)
    return paths

"""`fader edit --engine ray` on a local Ray instance: the same files as the plain path, byte for byte,
the same names, records and exit code; a corrupt image is reported in its row and fails nothing else."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import DATA
from PIL import Image

pytest.importorskip("ray")

FORMATS = (
    ("png", "RGB"),
    ("jpg", "RGB"),
    ("webp", "RGB"),
    ("bmp", "RGB"),
    ("tiff", "RGB"),
    ("png", "L"),
    ("png", "RGBA"),
    ("gif", "P"),
    ("jpg", "L"),
    ("tif", "RGBA"),
)


def photos(folder, n: int = 19) -> None:
    """n crops of the test photos in the formats and modes above, and one corrupt JPEG."""
    folder.mkdir()
    sources = [
        np.asarray(Image.open(DATA / name).convert("RGB")) for name in ("astronaut.png", "coffee.png", "horse.png")
    ]
    for i in range(n):
        pixels = sources[i % len(sources)]
        y, x, size = 11 * i, 7 * i, 48 + 4 * i
        ext, mode = FORMATS[i % len(FORMATS)]
        Image.fromarray(pixels[y : y + size, x : x + size + i % 3]).convert(mode).save(folder / f"face{i:02d}.{ext}")
    (folder / "face99.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG" + bytes(200))


def fader(*args, threads: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_DISABLE_USAGE_STATS": "1", **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    return subprocess.run(
        [sys.executable, "-m", "fadercli", *map(str, args)], capture_output=True, text=True, env=env, timeout=600
    )


def test_ray_writes_what_fader_edit_writes(tmp_path, toy_runs):
    photos(tmp_path / "in")
    edit = ["edit", tmp_path / "in", "-m", toy_runs["both"], "--set", "Smiling=1", "--no-align", "--json"]
    # At the same torch thread count: with other counts convolutions sum in another order, and a rare
    # pixel differs by one level (docs/batch.md); on one thread, batches of any make-up agree.
    plain = fader(*edit, "--out-dir", tmp_path / "plain", threads=1)
    ray = fader(
        *edit, "--out-dir", tmp_path / "ray", "--engine", "ray", "--actors", "2", "--threads-per-actor", "1", "-q"
    )
    assert (plain.returncode, ray.returncode) == (3, 3), ray.stderr[-3000:]
    written = sorted(p.name for p in (tmp_path / "plain").iterdir())
    assert len(written) == 19 and "face00_fader.png" in written and "face03_fader.bmp" in written
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == written
    for name in written:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes(), name
    plain_records = [json.loads(line) for line in plain.stdout.splitlines()]
    ray_records = [json.loads(line) for line in ray.stdout.splitlines()]
    assert [r["input"] for r in ray_records] == [r["input"] for r in plain_records]  # input order
    for a, b in zip(plain_records, ray_records):
        assert b["output"].replace("/ray/", "/plain/") == a["output"]
        assert (b["faces"], b["values"], b["models"]) == (a["faces"], a["values"], a["models"])
    broken = [line for line in ray.stderr.splitlines() if line.startswith("fader: error: ")]
    assert len(broken) == 1 and "face99.jpg" in broken[0], ray.stderr[-3000:]


def test_ray_refusals_come_before_any_work(tmp_path, toy_runs):
    photos(tmp_path / "in", n=2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "face00_fader.png").write_bytes(b"keep me")
    edit = ["edit", tmp_path / "in", "-m", toy_runs["both"], "--set", "Smiling=1", "--no-align", "--engine", "ray"]
    exists = fader(*edit, "--out-dir", tmp_path / "out")
    assert exists.returncode == 7 and "exists" in exists.stderr
    assert (tmp_path / "out" / "face00_fader.png").read_bytes() == b"keep me"
    assert fader(*edit, "--out-dir", tmp_path / "o2", "--actors", "0").returncode == 2
    assert fader(*edit, "--out-dir", tmp_path / "o3", "--set", "Nope=1").returncode == 2

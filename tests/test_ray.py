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
    # -q: fader's line for the input that failed, and nothing of Ray's own
    [broken] = ray.stderr.splitlines()
    assert broken.startswith("fader: error: ") and "face99.jpg" in broken, ray.stderr[-3000:]


def test_ray_creates_a_new_folder_at_a_file_uri_and_says_only_its_own_lines(tmp_path, toy_runs):
    photos(tmp_path / "in", n=2)
    out = tmp_path / "new" / "deeper"
    edit = ["edit", tmp_path / "in", "-m", toy_runs["both"], "--set", "Smiling=1", "--no-align", "--engine", "ray"]
    result = fader(*edit, "--out-dir", f"file://{out}", "--actors", "1")
    assert result.returncode == 3, result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["face00_fader.png", "face01_fader.jpg"]
    lines = result.stderr.splitlines()
    assert all(line.startswith("fader: ") for line in lines), result.stderr[-3000:]
    errors = [line for line in lines if line.startswith("fader: error: ")]
    assert len(errors) == 1 and "face99.jpg" in errors[0] and "fader: 2 of 3 image(s) edited" in lines
    assert len(lines) <= 3  # and at most one note


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


def test_a_face_detector_that_cannot_be_had_stops_the_job_before_ray_and_each_actor_tries_once(
    home, server, register, toy_runs, tmp_path, monkeypatch
):
    """No face detector given, none cached and its server down: fader fetches it once before the job
    (one line, exit 6, Ray not started); an actor without it (another node) tries once as it starts,
    and every row it is given says why."""
    from fadercli.batch import FaderEditor

    monkeypatch.delenv("FADER_DETECTOR_MODEL")  # not the repository's copy: the registry's, to download
    register({"yunet": {"url": server.url("/files/yunet.onnx")}})
    server.plan.fail = [503] * 100
    tries = int(os.environ["FADER_DOWNLOAD_RETRIES"]) + 1  # one download's tries
    photos(tmp_path / "in", n=4)
    edit = ["edit", tmp_path / "in", "-m", toy_runs["both"], "--set", "Smiling=1", "--engine", "ray", "-q"]
    result = fader(*edit, "--out-dir", tmp_path / "out")
    assert result.returncode == 6, result.stderr[-3000:]
    [line] = result.stderr.splitlines()
    assert line.startswith("fader: error: cannot download yunet from") and "HTTP 503" in line
    assert len(server.plan.requests) == tries and not (tmp_path / "out").exists()

    editor = FaderEditor([str(toy_runs["both"])], {"Smiling": 1.0})
    assert len(server.plan.requests) == 2 * tries
    inputs = sorted(str(p) for p in (tmp_path / "in").iterdir())
    for batch in (inputs[:2], inputs[2:]):
        rows = editor({"input": batch, "output": [f"{tmp_path}/{i}.png" for i in range(len(batch))]})
        assert rows["input"] == batch and rows["exit_code"] == [6] * len(batch)
        assert all(error.startswith("cannot download yunet from") for error in rows["error"])
    assert len(server.plan.requests) == 2 * tries and not list(tmp_path.glob("*.png"))


def test_fader_stops_at_the_first_row_that_failed_for_every_input(tmp_path, toy_runs, run_cli, monkeypatch):
    """A row an actor could not edit for a reason no one input's (the model, the face detector) stops
    the job there: one line, its exit code, Ray shut down; a row's own failure does not."""
    import fadercli.batch

    photos(tmp_path / "in", n=4)
    ended = []

    def job(pairs, editor, **settings):
        outcomes = [("", 0), ("cannot read it", 3), ("cannot download yunet", 6), ("cannot download yunet", 6)]
        try:
            for (source, target), (error, code) in zip(pairs, outcomes + [("", 0)] * len(pairs)):
                yield {
                    "input": source,
                    "output": target,
                    "faces": "[]",
                    "seconds": 0.1,
                    "error": error,
                    "exit_code": code,
                }
        finally:
            ended.append(True)

    monkeypatch.setattr(fadercli.batch, "edit_on_ray", job)
    edit = ["edit", tmp_path / "in", "-m", toy_runs["both"], "--set", "Smiling=1", "--no-align", "--engine", "ray"]
    result = run_cli(*edit, "--out-dir", tmp_path / "out", "-q")
    assert result.exit_code == 6 and ended == [True]
    assert result.stdout.splitlines() == [str(tmp_path / "out" / "face00_fader.png")]
    assert result.stderr.splitlines() == ["fader: error: cannot read it", "fader: error: cannot download yunet"]

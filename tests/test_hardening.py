"""Hostile photos, clips, weight files, labels and downloads: each gets one clear refusal, and
nothing runs another program, takes unbounded memory or time, or leaves a file behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import corpus
import numpy as np
import pytest
import torch
from clips import make_clip
from conftest import DATA, PEAK_MB, ROOT
from PIL import Image
from release_files import save_release_file

from fadercli.errors import InputError, ModelError, NoFaceError, OutputError, UsageError
from fadercli.media.images import decode_image, read_image
from fadercli.net.model import ClassifierConfig, FaderConfig
from fadercli.train.images import Preprocess, build_cache
from fadercli.train.sources import find_source
from fadercli.weights import hub
from fadercli.weights.format import save_model

PORTRAIT = DATA / "astronaut.png"
FADER = [sys.executable, "-m", "fadercli"]


def run(*args, env=None, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*FADER, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def one_line(result) -> str:
    """The one line a refused command printed on stderr (no traceback; the device it chose aside)."""
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("fader: device:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def fake_ghostscript(tmp_path: Path) -> tuple[dict, Path]:
    """A `gs` first on PATH that leaves a mark if anything runs it."""
    bin_dir, mark = tmp_path / "bin", tmp_path / "gs-ran"
    bin_dir.mkdir()
    gs = bin_dir / "gs"
    gs.write_text(f"#!/bin/sh\ntouch {mark}\nexit 1\n")
    gs.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, mark


# ---------------------------------------------------------------- 1. PostScript never reaches Ghostscript


def test_postscript_named_as_a_photo_is_refused_unread_everywhere(tmp_path, toy_runs):
    env, mark = fake_ghostscript(tmp_path)
    photo = tmp_path / "photo.png"
    photo.write_bytes(corpus.EPS)
    result = run("edit", photo, "--model", toy_runs["both"], "--set", "Smiling=1", env=env)
    assert result.returncode == InputError.exit_code
    assert "a PostScript file, not a photo format fader reads" in one_line(result)
    assert not (tmp_path / "photo_fader.png").exists()
    # The library's readers, a training folder's loader and an upload take the same gate.
    script = f"""
from pathlib import Path
from fadercli.train.images import Preprocess, load_image
from fadercli.errors import InputError
from fadercli.media.images import decode_image, read_image
path = Path({str(photo)!r})
for read in (lambda: read_image(path), lambda: decode_image(path.read_bytes(), "upload.png"),
             lambda: load_image(path, Preprocess(32))):
    try:
        read()
    except InputError as e:
        print(e.code)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, **env}, cwd=ROOT, timeout=60
    )
    assert out.stdout.split() == ["not_an_image"] * 3, out.stderr
    assert not mark.exists()


def test_only_the_allowed_formats_are_read(tmp_path):
    for name, data, kind in (
        ("icon.jpg", corpus.ico(), "a Windows icon"),
        ("layers.png", corpus.psd(), "a Photoshop file"),
        ("doc.jpg", corpus.PDF, "a PDF document"),
        ("vector.png", corpus.SVG, "an XML file"),
    ):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InputError, match=f"{kind}, not a photo format") as caught:
            read_image(tmp_path / name)
        assert caught.value.code == "not_an_image"
    for fmt in ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "PPM"):
        path = tmp_path / f"ok.{fmt.lower()}"
        path.write_bytes(corpus.photo_bytes(fmt))
        assert read_image(path).width == 96


def test_a_fifo_is_not_read(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        read_image(fifo)  # would block for ever if opened


# ---------------------------------------------------------------- 3. pixel bombs, faces, frames


def test_pixel_limits_are_checked_from_the_header(tmp_path):
    from fadercli.limits import Limits

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(corpus.huge_headers()["png16_12000_cut.png"])
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"12000 x 12000 pixels \(144.0 MP\), over the 100 MP limit") as caught:
        read_image(bomb)
    assert caught.value.code == "too_many_pixels" and time.perf_counter() - started < 1
    with pytest.raises(InputError, match="over the 0.2 MP limit"):
        decode_image(PORTRAIT.read_bytes(), "upload.png", limits=Limits.of(0.2))
    assert read_image(PORTRAIT, limits=Limits.of(0.27)).width == 512
    with pytest.raises(UsageError):
        Limits.of(float("nan"))


def test_a_real_pixel_bomb_takes_no_memory(tmp_path, toy_runs):
    """12000 x 12000 16-bit RGBA: 1.1 MB that decodes to 1.15 GB (and more once converted)."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(corpus.png_bomb())
    script = f"""
import sys
from fadercli.cli import main
sys.argv = ["fader", "edit", {str(bomb)!r}, "--model", {str(toy_runs["both"])!r}, "--set", "Smiling=1", "-q"]
try:
    main()
except SystemExit as e:
    print(e.code, {PEAK_MB})
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    code, peak_mb = map(int, out.stdout.split())
    assert code == InputError.exit_code and "over the 100 MP limit" in out.stderr
    assert peak_mb < 700, peak_mb  # torch and the model; the picture would be 1,150 MB before any copy


def _crowd(n: int) -> np.ndarray:
    """n x n copies of the portrait's face in a grid."""
    face = np.asarray(Image.open(PORTRAIT).convert("RGB").crop((150, 40, 300, 250)).resize((120, 168)))
    return np.concatenate([np.concatenate([face] * n, axis=1)] * n, axis=0)


def test_faces_per_photo_are_capped(tmp_path, toy_runs):
    crowd = tmp_path / "crowd.png"
    Image.fromarray(_crowd(3)).save(crowd)
    both = run("edit", crowd, "--model", toy_runs["both"], "--set", "Smiling=1", "--json", "-o", tmp_path / "all.png")
    capped = run(
        "edit",
        crowd,
        "--model",
        toy_runs["both"],
        "--set",
        "Smiling=1",
        "--json",
        "--max-faces",
        "2",
        "-o",
        tmp_path / "two.png",
    )
    assert both.returncode == 0 and capped.returncode == 0, capped.stderr
    assert len(json.loads(both.stdout)["faces"]) == 9
    assert [f["face"] for f in json.loads(capped.stdout)["faces"]] == [0, 1]
    assert one_line(run("edit", crowd, "--model", toy_runs["both"], "--set", "Smiling=1", "--max-faces", "0")).endswith(
        "--max-faces must be from 1 to 1000, got 0"
    )


def test_video_frames_over_the_pixel_limit_are_refused(tmp_path, toy_runs):
    clip = make_clip(tmp_path / "clip.mp4", n=3)
    result = run("edit", clip, "--model", toy_runs["both"], "--set", "Smiling=1", "--max-megapixels", "0.01")
    assert result.returncode == InputError.exit_code
    assert one_line(result).endswith(
        "each frame is 192 x 144 pixels (0.0 MP), over the 0.01 MP limit (--max-megapixels)"
    )
    assert not (tmp_path / "clip_fader.mp4").exists()


def test_clips_that_point_elsewhere_are_not_followed(tmp_path, toy_runs):
    """A playlist or concat list named as a clip would make FFmpeg open the files it names."""
    good = make_clip(tmp_path / "good.mp4", n=3)
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(good.read_bytes())
    listing = tmp_path / "list.mkv"
    listing.write_bytes(b"ffconcat version 1.0\nfile " + str(secret).encode() + b"\n")
    result = run("inspect", listing, "--model", toy_runs["both"])
    assert result.returncode == InputError.exit_code
    assert "not a video, or a container that cannot be read" in one_line(result)


def test_clip_metadata_that_is_not_utf8_is_read(tmp_path, toy_runs):
    clip = make_clip(tmp_path / "clip.mkv", n=3)
    with av_open(clip) as source, av_open(tmp_path / "latin.mkv", "w", metadata_encoding="latin-1") as out:
        out.metadata["title"] = "café crème"  # written as latin-1: not UTF-8
        stream = source.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for packet in source.demux(stream):
            if packet.size:  # not the empty packet at the end
                packet.stream = copy
                out.mux(packet)
    result = run("inspect", tmp_path / "latin.mkv", "--model", toy_runs["both"], "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["frames"] == [0, 2]


def av_open(path, mode="r", **options):
    import av

    return av.open(str(path), mode, **options)


# ---------------------------------------------------------------- 4. weight files that claim more than they hold


def _stride0_classifier(release, tmp_path: Path, hid_dim: int) -> Path:
    """An authors'-format classifier whose hidden layer claims hid_dim x 32 floats from one stored float."""
    model = release.Classifier(img_sz=32, init_fm=8, max_fm=32, hid_dim=8)
    model.hid_dim = hid_dim
    linear = model.proj_layers[0]
    linear.weight = torch.nn.Parameter(torch.zeros(1).expand(hid_dim, linear.in_features))
    linear.bias = torch.nn.Parameter(torch.zeros(1).expand(hid_dim))
    last = model.proj_layers[2]
    last.weight = torch.nn.Parameter(torch.zeros(1).expand(last.out_features, hid_dim))
    return save_release_file(model, tmp_path / f"classifier{hid_dim}.pth", copy_first=False)


def test_stride_zero_tensors_are_refused_with_bounded_memory(release, tmp_path, home):
    path = _stride0_classifier(release, tmp_path, hid_dim=4096)
    with pytest.raises(ModelError, match="not a dense view of its storage"):
        hub.load_file(path)
    big = _stride0_classifier(release, tmp_path, hid_dim=20_000_000)  # 2.4 GB of floats claimed
    script = f"""
import sys
from fadercli.cli import main
sys.argv = ["fader", "{{}}", {str(big)!r}] + sys.argv[1:]
try:
    main()
except SystemExit as e:
    print(e.code, {PEAK_MB})
"""
    for command in (["info"], ["models", "import"]):
        args = ["--name", "x"] if command == ["models", "import"] else []
        code = script.replace('"{}"', ", ".join(f'"{c}"' for c in command))
        out = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            env={**os.environ, "FADER_HOME": str(home)},
        )
        status, peak_mb = map(int, out.stdout.split())
        assert status == ModelError.exit_code and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert peak_mb < 600, peak_mb
    assert not (home / "models" / "x").exists()


def test_a_module_tree_that_shares_modules_is_refused_at_once(release, tmp_path):
    """4^14 paths through 15 shared modules: walking them all would take hours."""
    model = release.AutoEncoder(img_sz=32, init_fm=8, max_fm=32, n_layers=3)
    level = torch.nn.Sequential()
    for _ in range(14):
        parent = torch.nn.Sequential()
        for k in range(4):
            parent.add_module(str(k), level)
        level = parent
    model.add_module("extra", level)
    path = save_release_file(model, tmp_path / "dag.pth")
    result = run("info", path, timeout=60)
    assert result.returncode == ModelError.exit_code
    assert "appears more than once in the tree" in one_line(result)


def test_configs_beyond_sane_bounds_are_refused():
    for config in (
        dict(init_fm=8192, max_fm=8192),
        dict(hid_dim=10**6),
        dict(attributes=(("A", 10**6),)),
        dict(attributes=tuple((f"A{i}", 2) for i in range(100))),
        dict(img_channels=10**6),
    ):
        with pytest.raises(ValueError):
            FaderConfig(img_size=32, n_layers=3, **config)
    with pytest.raises(ValueError):
        ClassifierConfig(img_size=32, hid_dim=10**6)
    with pytest.raises(ValueError, match="wrong type"):
        FaderConfig.from_dict({"img_size": "64"})


def _checkpoint(tmp_path: Path, ae: dict, compress: bool = False) -> Path:
    from fadercli.train.config import TrainConfig
    from fadercli.weights.checkpoints import CHECKPOINT_VERSION

    config = FaderConfig(img_size=32, init_fm=8, max_fm=32, n_layers=3)
    state = {
        "version": CHECKPOINT_VERSION,
        "step": 1,
        "config": TrainConfig(img_size=32).__dict__,
        "model_config": config.to_dict(),
        "ae": ae,
    }
    path = tmp_path / "run" / "checkpoint.pt"
    path.parent.mkdir(exist_ok=True)
    torch.save(state, path)
    if compress:
        packed = path.with_suffix(".zip")
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info))
        packed.replace(path)
    return path


def test_checkpoints_with_views_or_compressed_records_are_refused(tmp_path):
    from fadercli.net.model import AutoEncoder

    ae = AutoEncoder(FaderConfig(img_size=32, init_fm=8, max_fm=32, n_layers=3)).state_dict()
    assert hub.load_file(_checkpoint(tmp_path, ae)).config.img_size == 32
    viewed = dict(ae)
    name = "enc_layers.1.0.weight"
    viewed[name] = torch.zeros(1).expand(ae[name].shape)
    result = run("info", _checkpoint(tmp_path, viewed))
    assert result.returncode == ModelError.exit_code and "is not dense in memory" in one_line(result)
    result = run("info", _checkpoint(tmp_path, ae, compress=True))
    assert result.returncode == ModelError.exit_code and "compressed or oversized records" in one_line(result)
    bad_config = _checkpoint(tmp_path, ae)
    state = torch.load(bad_config, weights_only=True)
    state["model_config"]["init_fm"] = "eight"
    torch.save(state, bad_config)
    result = run("info", bad_config)
    assert result.returncode == ModelError.exit_code and "a damaged checkpoint" in one_line(result)


# ---------------------------------------------------------------- 6. one line where one line is promised


def test_face_indices_are_ascii_digits(toy_runs, tmp_path):
    result = run(
        "edit", PORTRAIT, "--model", toy_runs["both"], "--set", "Smiling=1", "--face", "²", "-o", tmp_path / "x.png"
    )
    assert result.returncode == UsageError.exit_code
    assert one_line(result).startswith("fader: error: --face must be all, largest or a face index")


def test_slider_ranges_that_are_not_an_object_are_a_model_error(tmp_path):
    from safetensors.torch import load_file, save_file

    from fadercli.net.model import AutoEncoder

    path = tmp_path / "m.safetensors"
    save_model(path, AutoEncoder(FaderConfig(img_size=32, init_fm=8, max_fm=32, n_layers=3)))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    for ranges in ("[[0, 1]]", '{"Eyeglasses": [1, 0]}', '{"Eyeglasses": [0, NaN]}', '{"Other": [0, 1]}', '"x"'):
        save_file(load_file(str(path)), str(path), metadata=metadata | {"slider_ranges": ranges})
        result = run("info", path)
        assert result.returncode == ModelError.exit_code and "invalid metadata" in one_line(result)


def test_a_full_disk_while_saving_a_model_is_one_line(tmp_path, toy_runs, home):
    """The file size limit makes every write past 100 kB fail as a full disk would."""
    script = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
from fadercli.cli import main
sys.argv = ["fader"] + sys.argv[1:]
main()
"""
    model = toy_runs["smiling"] / "classifier.safetensors"  # 2.8 MB
    out = subprocess.run(
        [sys.executable, "-c", script, "models", "import", str(model), "--name", "mine"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "FADER_HOME": str(home)},
    )
    assert out.returncode == OutputError.exit_code
    assert one_line(out).endswith(": File too large")
    assert not any(p.is_file() for p in (home / "models").rglob("*"))


@pytest.mark.parametrize("option", ["--max-upload-mb", "--cache-mb", "--max-megapixels"])
@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_serve_numbers_must_be_finite(option, value, run_cli):
    result = run_cli("serve", "--model", "nothing.safetensors", option, value, "--port", "0")  # checked first
    assert result.exit_code == UsageError.exit_code
    assert len(result.stderr.strip().splitlines()) == 1 and option in result.stderr


def test_cors_takes_one_origin(run_cli):
    for value in ("*", "null", "https://a.example/path", "https://*.example", "ftp://a.example", "https://a.example/"):
        result = run_cli("serve", "--model", "nothing.safetensors", "--cors", value, "--port", "0")
        assert result.exit_code == UsageError.exit_code, value
        assert "--cors takes one origin" in result.stderr


# ---------------------------------------------------------------- 7. downloads


def _model_bytes(tmp_path: Path) -> bytes:
    from fadercli.net.model import AutoEncoder

    path = tmp_path / "good.safetensors"
    save_model(path, AutoEncoder(FaderConfig(img_size=32, init_fm=8, max_fm=32, n_layers=3)))
    return path.read_bytes()


@pytest.mark.parametrize("bad", ["html", "cut"])
def test_a_bad_first_download_is_not_pinned(bad, tmp_path, home, server):
    good = _model_bytes(tmp_path)
    url = server.url("/m/model.safetensors")
    if bad == "html":
        server.plan.files["/m/model.safetensors"] = b"<html><body>Sign in to continue</body></html>"
    else:  # no Content-Length, and the connection closes half way: the body looks complete
        server.plan.files["/m/model.safetensors"] = good
        server.plan.no_length, server.plan.cut_after = True, len(good) // 2
    with pytest.raises(ModelError, match="not a usable model, so it was deleted"):
        hub.resolve_model(url, quiet=True)
    assert not list((home / "models").glob("*.sha256"))
    server.plan.files["/m/model.safetensors"], server.plan.no_length = good, False
    assert hub.resolve_model(url, quiet=True).config.img_size == 32
    [record] = (home / "models").glob("*.sha256")
    assert record.read_text().strip() == __import__("hashlib").sha256(good).hexdigest()


def test_redirects_are_followed_but_never_off_http(tmp_path, home, server, monkeypatch):
    good = _model_bytes(tmp_path)
    server.plan.files["/real/model.safetensors"] = good
    server.plan.redirects["/moved/model.safetensors"] = "/real/model.safetensors"
    assert hub.resolve_model(server.url("/moved/model.safetensors"), quiet=True).config.img_size == 32
    server.plan.redirects["/away/model.safetensors"] = "file:///etc/passwd"
    with pytest.raises(Exception, match="refused a redirect .* to file:///etc/passwd"):
        hub.resolve_model(server.url("/away/model.safetensors"), quiet=True)


def test_an_https_download_is_never_redirected_to_http(home, monkeypatch):
    import requests

    from fadercli.weights import download

    calls = []

    class Redirect:
        status_code, is_redirect, headers = 302, True, {"Location": "http://example.com/model.safetensors"}

        def close(self):
            pass

    def fake_get(url, **kwargs):
        calls.append((url, kwargs.get("allow_redirects")))
        return Redirect()

    monkeypatch.setattr(requests, "get", fake_get)
    job = download.Download(home / "x.safetensors", None, None, "x", False, None, download.DownloadSettings(retries=0))
    (home).mkdir(exist_ok=True)
    with pytest.raises(Exception, match="downloads stay on https"):
        download.download(["https://example.com/model.safetensors"], job)
    assert calls == [("https://example.com/model.safetensors", False)]


# ---------------------------------------------------------------- 8. training data


def _write_faces(folder: Path, n: int = 4, suffix: str = ".png") -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(folder / f"f{i}{suffix}")
        names.append(f"f{i}{suffix}")
    return names


def test_labels_in_utf16_are_read_and_other_encodings_refused(tmp_path):
    names = _write_faces(tmp_path / "data")
    text = "image\tSmiling\n" + "".join(f"{n}\t{i % 2}\n" for i, n in enumerate(names))
    (tmp_path / "data" / "labels.csv").write_bytes(text.encode("utf-16"))  # a spreadsheet's "Unicode text"
    source = find_source(tmp_path / "data")
    assert source.attributes.names == ["Smiling"] and source.labels[:, 0].tolist() == [0, 1, 0, 1]
    (tmp_path / "data" / "labels.csv").write_bytes("image,Lächeln\nf0.png,1\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8 or UTF-16 text"):
        find_source(tmp_path / "data")
    (tmp_path / "data" / "labels.csv").write_text("image,Smiling\nf0.png," + "1" * 200_000 + "\n")
    with pytest.raises(InputError, match="not a readable CSV file"):
        find_source(tmp_path / "data")


def test_label_rows_cannot_name_files_outside_the_data_folder(tmp_path):
    names = _write_faces(tmp_path / "data")
    _write_faces(tmp_path / "elsewhere", 1)
    rows = [f"{n},{i % 2}" for i, n in enumerate(names)] + ["../elsewhere/f0.png,1", f"{tmp_path}/elsewhere/f0.png,0"]
    (tmp_path / "data" / "labels.csv").write_text("image,Smiling\n" + "\n".join(rows) + "\n")
    source = find_source(tmp_path / "data")
    assert [p.name for p in source.files] == names
    assert source.skips.counts == {"outside the data folder": 2}


def test_an_interrupted_cache_build_leaves_nothing(tmp_path, monkeypatch):
    from fadercli.train import images as data

    names = _write_faces(tmp_path / "data")
    files = [tmp_path / "data" / n for n in names]
    stale = tmp_path / "cache" / ".oldkey.99999999.tmp"  # a build killed outright: its process is gone
    stale.mkdir(parents=True)
    (stale / "images.u8").write_bytes(bytes(1000))

    def interrupted(job):
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "_fill", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_cache(files, Preprocess(32), tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_the_cache_sees_an_edit_that_keeps_size_and_mtime(tmp_path):
    names = _write_faces(tmp_path / "data", suffix=".bmp")  # uncompressed: an edit keeps the size
    files = [tmp_path / "data" / n for n in names]
    first = build_cache(files, Preprocess(32), tmp_path / "cache")
    assert first.read(np.array([0]))[0].max() == 0
    target = files[0]
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[-32 * 32 * 3 :] = b"\xff" * (32 * 32 * 3)  # every pixel white
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # the old mtime put back
    assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    second = build_cache(files, Preprocess(32), tmp_path / "cache")
    assert second.folder != first.folder
    assert second.read(np.array([0]))[0].min() == 255


# ---------------------------------------------------------------- the whole corpus through `fader edit`


def test_fader_edit_on_the_malformed_corpus(tmp_path, toy_runs):
    """Every file refused in at most one line (no exit 1, no traceback), nothing written for a refused
    file, peak memory bounded: the measured peak is printed for the record."""
    folder = tmp_path / "corpus"
    files = corpus.photo_corpus(folder) + corpus.clip_corpus(folder, make_clip(tmp_path / "good.mp4", n=3))
    (folder / "bomb.png").write_bytes(corpus.png_bomb())
    files.append(folder / "bomb.png")
    out = tmp_path / "out"
    script = f"""
import sys
from fadercli.cli import main
sys.argv = ["fader", "edit", {str(folder)!r}, "--model", {str(toy_runs["both"])!r}, "--set", "Smiling=1",
            "--out-dir", {str(out)!r}, "-q"]
try:
    main()
except SystemExit as e:
    print("exit", e.code, {PEAK_MB}, file=sys.stderr)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    *lines, last = result.stderr.strip().splitlines()
    _, code, peak_mb = last.split()
    assert int(code) in (InputError.exit_code, NoFaceError.exit_code) and "Traceback" not in result.stderr
    written = result.stdout.split()
    for path in files:
        said = [
            line
            for line in lines
            if line.startswith(f"fader: error: {path}:") or line == f"fader: error: no face found in {path}"
        ]
        assert len(said) <= 1, said
        output = out / f"{path.stem}_fader{path.suffix if path.suffix != '.y4m' else '.mp4'}"
        assert (str(output) in written) == (not said) == output.exists(), (path.name, said)
    assert len(lines) == len([p for p in files if str(out / f"{p.stem}_fader{p.suffix}") not in written])
    print(f"fader edit on {len(files)} corpus files: peak RSS {peak_mb} MB")
    assert int(peak_mb) < 700, peak_mb

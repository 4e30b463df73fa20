"""Clips of every shape (odd sizes, rotation metadata, WebM), inputs fader refuses, sweeps written
as video, and the YUV merge that keeps untouched pixels exact."""

import json
import os

import av
import numpy as np
import pytest
from clips import ASTRONAUT, make_clip, packets, read_frames

from fadercli.errors import InputError, NoFaceError, UsageError
from fadercli.media import clips, encoder
from fadercli.media.grids import grid_size

SIZE = (192, 144)


def _video(path):
    with av.open(str(path)) as container:
        s = container.streams.video[0]
        frames = list(container.decode(s))
        return {
            "frames": len(frames),
            "size": (frames[0].width, frames[0].height),
            "rotation": frames[0].rotation,
            "codec": s.codec_context.name,
            "rate": s.average_rate,
            "end": float(frames[-1].pts * frames[-1].time_base) + 1 / float(s.average_rate),
        }


def _times(path):
    """The timestamps (seconds) of every frame and packet, per stream type."""
    with av.open(str(path)) as container:
        out = {"video": [float(f.pts * f.time_base) for f in container.decode(video=0)]}
        kinds = [s.type for s in container.streams if s.type != "video"]
    for kind in kinds:
        with av.open(str(path)) as container:
            stream = next(s for s in container.streams if s.type == kind)
            out[kind] = [float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None]
    return out


def _changed(a, b):
    """How much each pixel of each frame differs between two clips (the largest of its channels)."""
    return np.abs(np.stack(read_frames(a)).astype(int) - np.stack(read_frames(b)).astype(int)).max(axis=3)


def test_rotation_metadata_is_kept_and_faces_are_found_upright(run_cli, toy_runs, tmp_path):
    # Stored turned a quarter (144 x 192, the face lying on its side), shown upright through the matrix.
    clip = make_clip(tmp_path / "phone.mp4", 8, SIZE, rotation=90)
    source = _video(clip)
    assert source["size"] == (144, 192) and source["rotation"] == 90
    out = tmp_path / "out.mp4"
    result = run_cli("edit", clip, "--model", toy_runs["both"], "--set", "Eyeglasses=2", "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert _video(out)["size"] == (144, 192) and _video(out)["rotation"] == 90
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["size"] == [192, 144]  # as displayed
    # Tracked as on the same clip stored upright: boxes in the displayed picture.
    upright = make_clip(tmp_path / "upright.mp4", 8, SIZE)
    inspected = run_cli("inspect", upright, "--model", toy_runs["both"], "--json")
    [track] = [json.loads(line) for line in inspected.stdout.splitlines()]
    [turned] = record["tracks"]
    assert turned["frames"] == [0, 7] and np.abs(np.subtract(turned["box"], track["box"])).max() < 2
    # The edit is on the face: shown upright, the frames changed inside its box.
    x, y, w, h = track["box"]
    change = np.stack([np.rot90(f, 1) for f in _changed(out, clip)])
    inside = change[:, int(y) : int(y + h), int(x) : int(x + w)].mean()
    assert inside > 5 * change.mean() / 2 and inside > 3


@pytest.mark.parametrize("suffix, size", [(".mp4", (160, 120)), (".webm", (161, 121))])
def test_odd_sizes(run_cli, toy_runs, tmp_path, suffix, size):
    clip = make_clip(tmp_path / "odd.mkv", 6, (161, 121), codec="libx264", pix_fmt="yuv444p")
    out = tmp_path / f"out{suffix}"
    result = run_cli("edit", clip, "--model", toy_runs["both"], "--set", "Eyeglasses=2", "-o", out)
    assert result.exit_code == 0, result.stderr
    video = _video(out)
    assert video["size"] == size and video["frames"] == 6
    assert video["codec"] == ("h264" if suffix == ".mp4" else "vp9")
    if suffix == ".mp4":  # said, as H.264 needs it
        assert "H.264 needs even sides, so its last column and row are left out (160 x 120)" in result.stderr
    else:
        assert "even sides" not in result.stderr


def test_webm_takes_opus_and_refuses_aac_which_is_never_reencoded(run_cli, toy_runs, tmp_path):
    webm = make_clip(tmp_path / "talk.webm", 6, SIZE, audio=True, codec="libvpx-vp9")
    out = tmp_path / "out.webm"
    result = run_cli(
        "edit",
        webm,
        "--model",
        toy_runs["both"],
        "--set",
        "Smiling=1",
        "-o",
        out,
        "--crf",
        "40",
        "--preset",
        "ultrafast",
    )
    assert result.exit_code == 0, result.stderr
    assert _video(out)["codec"] == "vp9" and packets(out, "audio") == packets(webm, "audio")
    mp4 = make_clip(tmp_path / "talk.mp4", 6, SIZE, audio=True)
    refused = run_cli("edit", mp4, "--model", toy_runs["both"], "--set", "Smiling=1", "-o", tmp_path / "aac.webm")
    assert refused.exit_code == UsageError.exit_code
    assert refused.stderr.strip().splitlines()[-1] == (
        f"fader: error: .webm cannot hold the aac audio of {mp4}, which is copied, never re-encoded: write .mkv"
        " (holds any codec) or .mp4"
    )
    assert not (tmp_path / "aac.webm").exists()


def test_subtitles_are_copied_where_the_container_holds_them(run_cli, toy_runs, tmp_path):
    clip = make_clip(tmp_path / "film.mkv", 6, SIZE, audio=True, subtitles=("Hello there.", "General Kenobi!"))
    assert packets(clip, "subtitle") == [b"Hello there.", b"General Kenobi!"]
    kept = run_cli("edit", clip, "--model", toy_runs["both"], "--set", "Smiling=1", "-o", tmp_path / "out.mkv")
    assert kept.exit_code == 0, kept.stderr
    assert packets(tmp_path / "out.mkv", "subtitle") == packets(clip, "subtitle")
    assert packets(tmp_path / "out.mkv", "audio") == packets(clip, "audio")
    assert _times(tmp_path / "out.mkv") == _times(clip)
    dropped = run_cli("edit", clip, "--model", toy_runs["both"], "--set", "Smiling=1", "-o", tmp_path / "out.mp4")
    assert dropped.exit_code == 0, dropped.stderr
    assert f".mp4 cannot hold the srt subtitles of {clip}: left out (.mkv keeps them)" in dropped.stderr
    assert packets(tmp_path / "out.mp4", "subtitle") == [] and packets(tmp_path / "out.mp4", "audio") == packets(
        clip, "audio"
    )


@pytest.mark.parametrize("suffix", [".mkv", ".mov"])
def test_every_timestamp_is_kept(run_cli, toy_runs, tmp_path, suffix):
    clip = make_clip(tmp_path / "talk.mp4", 8, SIZE, audio=True)
    times = _times(clip)
    assert min(times["audio"]) < 0  # the AAC encoder's priming, before the first frame
    out = tmp_path / f"out{suffix}"
    result = run_cli("edit", clip, "--model", toy_runs["both"], "--set", "Smiling=1", "-o", out)
    assert result.exit_code == 0, result.stderr
    # Not shifted, in Matroska either (by default its muxer moves all streams by the priming).
    assert {k: np.round(v, 3).tolist() for k, v in _times(out).items()} == {
        k: np.round(v, 3).tolist() for k, v in times.items()
    }


def _truncated(tmp_path):
    clip = make_clip(tmp_path / "whole.mp4", 24, SIZE, audio=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: int(clip.stat().st_size * 0.8)])
    return cut


def _unknown_codec(tmp_path):
    clip = make_clip(tmp_path / "whole.mp4", 4, SIZE)
    odd = tmp_path / "odd.mp4"
    odd.write_bytes(clip.read_bytes().replace(b"avc1", b"zzz1"))
    return odd


def _audio_only(tmp_path):
    path = tmp_path / "song.mp4"
    with av.open(str(path), "w") as container:
        sound = container.add_stream("aac", rate=16000)
        sound.layout = "mono"
        for start in range(0, 16000, 1024):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    return path


def _not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are not frames\n" * 20)
    return path


@pytest.mark.parametrize(
    "make, code, message",
    [
        (_truncated, InputError.exit_code, "of 24 frames decode (--partial edits those)"),
        (
            _unknown_codec,
            InputError.exit_code,
            "odd.mp4: its video codec is unknown to FFmpeg, so it cannot be decoded",
        ),
        (_audio_only, InputError.exit_code, "song.mp4: no video stream (audio only)"),
        (_not_a_video, InputError.exit_code, "notes.mp4: not a video, or a container that cannot be read"),
    ],
)
def test_bad_clips_are_one_line_and_write_nothing(run_cli, toy_runs, tmp_path, make, code, message):
    clip = make(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("edit", clip, "--model", toy_runs["both"], "--set", "Smiling=1", "--out-dir", out)
    assert result.exit_code == code, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("fader: error: ") and message in errors[0], errors
    assert result.stdout == "" and os.listdir(out) == []


def test_partial_edits_the_frames_of_a_truncated_clip(run_cli, toy_runs, tmp_path):
    cut = _truncated(tmp_path)
    out = tmp_path / "out.mp4"
    result = run_cli("edit", cut, "--model", toy_runs["both"], "--set", "Smiling=1", "-o", out, "--partial")
    assert result.exit_code == 0, result.stderr
    decoded = len(list(clips.decode(clips.probe(cut), partial=True)))
    assert 0 < decoded < 24
    assert f"truncated ({decoded} of 24 frames decode): the frames that decode are edited" in result.stderr
    assert _video(out)["frames"] == decoded
    assert packets(out, "audio") == packets(cut, "audio")  # what was left of the sound


def test_video_options_are_checked_before_any_work(run_cli, toy_runs, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", 4, SIZE)
    for args, message in (
        (["--crf", "60"], "--crf 60: H.264 takes 0 to 51"),
        (["--preset", "quick"], "'--preset': 'quick' is not one of 'ultrafast'"),
        (["-o", tmp_path / "c.flv"], "c.flv: fader writes video as"),
    ):
        result = run_cli("edit", clip, "--model", toy_runs["both"], "--set", "Smiling=1", *args)
        assert result.exit_code == UsageError.exit_code and message in result.stderr, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["c.mp4"]


def test_inspect_a_clip_without_faces(run_cli, toy_runs, tmp_path):
    clip = make_clip(tmp_path / "empty.mp4", 4, SIZE, cut=0)
    result = run_cli("inspect", clip, "--model", toy_runs["both"])
    assert result.exit_code == NoFaceError.exit_code and "no face found in any frame" in result.stderr


# ---------------------------------------------------------------- sweeps as video


@pytest.mark.parametrize(
    "suffix, args, frames, seconds",
    [
        (".mp4", ["--seconds", "2", "--fps", "10", "--bounce"], 20, 2.0),
        (".mp4", ["--seconds", "1.2"], 30, 1.2),  # 25 frames/s with --seconds
        (".webm", ["--steps", "6"], 6, 0.75),  # 8 frames/s, as a GIF
    ],
)
def test_sweeps_as_video(run_cli, toy_runs, tmp_path, suffix, args, frames, seconds):
    out = tmp_path / f"sweep{suffix}"
    result = run_cli(
        "sweep", ASTRONAUT, "--model", toy_runs["both"], "--attr", "Smiling", "-o", out, "--max-size", "96", *args
    )
    assert result.exit_code == 0, result.stderr
    assert f"{frames} frames" in result.stderr
    video = _video(out)
    assert video["frames"] == frames and video["end"] == pytest.approx(seconds, abs=1e-3)
    assert video["size"] == grid_size(1, 1, (96, 96)) and video["codec"] == ("h264" if suffix == ".mp4" else "vp9")
    pictures = np.stack(read_frames(out)).astype(int)
    if "--bounce" in args:  # up and back down: frame k and frame n - k show the same value
        assert np.abs(pictures[3] - pictures[17]).mean() < 2 < np.abs(pictures[3] - pictures[10]).mean()
    assert np.abs(pictures[0] - pictures[frames // 2]).mean() > 1


def test_sweep_video_refusals(run_cli, toy_runs, tmp_path):
    grid = run_cli(
        "sweep", ASTRONAUT, "--model", toy_runs["both"], "--attr", "Smiling", "-o", tmp_path / "g.png", "--seconds", "2"
    )
    assert grid.exit_code == UsageError.exit_code and "--seconds is for animations" in grid.stderr
    fast = run_cli(
        "sweep", ASTRONAUT, "--model", toy_runs["both"], "--attr", "Smiling", "-o", tmp_path / "s.mp4", "--fps", "200"
    )
    assert fast.exit_code == UsageError.exit_code and "at most 120" in fast.stderr
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- the YUV merge


def test_merge_keeps_every_untouched_pixel_as_decoded(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", 1, SIZE)
    info = clips.probe(clip)
    [frame] = list(clips.decode(info))
    yuv = clips.planes(frame)
    kept = [p.copy() for p in yuv]
    before = clips.rgb(frame)
    after = before.copy()
    after[41:60, 71:90] = (255, 0, 0)  # a red square on odd edges: the chroma samples it half covers change too
    encoder.merge(yuv, before, after, info)
    changed = [p != k for p, k in zip(yuv, kept)]
    square = np.zeros_like(changed[0])
    square[41:60, 71:90] = True
    # Luma: the square (where red's value differs from the skin's: all but a pixel or so), nothing else.
    assert not changed[0][~square].any() and changed[0][square].mean() > 0.95
    blocks = np.zeros_like(changed[1])
    blocks[20:30, 35:45] = True  # chroma: the 2 x 2 blocks it touches, half-covered ones too
    for c in changed[1:]:
        assert not c[~blocks].any() and c[blocks].mean() > 0.95
    back = av.VideoFrame(*SIZE, "yuv420p")
    for plane, data in zip(back.planes, yuv):
        np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width] = data
    red = back.to_ndarray(format="rgb24")[45:55, 75:85].astype(int)
    assert np.abs(red - (255, 0, 0)).max() < 12


@pytest.mark.parametrize(
    ("size", "layout", "colour"),
    [
        ((640, 360), "yuv420p", (2, 0)),
        ((322, 182), "yuv420p", (1, 1)),
        ((202, 98), "yuvj420p", (1, 2)),
        ((161, 121), "yuv420p", (5, 1)),  # odd sides: converted whole
    ],
)
def test_a_region_converts_to_rgb_as_it_does_in_the_whole_frame(size, layout, colour):
    rng = np.random.default_rng(0)
    frame = av.VideoFrame(*size, layout)
    for plane in frame.planes:  # noise: any chroma sample reaching across a box's edge would show
        data = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        data[:] = rng.integers(0, 256, data.shape)
    frame.colorspace, frame.color_range = colour
    whole, yuv = clips.rgb(frame), clips.planes(frame)
    for box in [(0, 0, *size), (3, 5, 61, 40), (10, 11, size[0], size[1] - 1), (1, 1, 2, 2)]:
        region, (x0, y0, x1, y1) = clips.rgb_region(frame, yuv, box)
        assert x0 <= box[0] and y0 <= box[1] and x1 >= box[2] and y1 >= box[3]
        assert np.array_equal(region, whole[y0:y1, x0:x1])


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_boxes_of_the_displayed_picture_map_to_the_stored_frame(rotation):
    from fadercli.video.editing import _coded_box

    stored = np.arange(7 * 11).reshape(7, 11)
    shown = np.rot90(stored, rotation // 90)  # as the display matrix turns it
    x0, y0, x1, y1 = _coded_box((2, 1, 5, 4), rotation, shown.shape[1], shown.shape[0])
    assert np.array_equal(np.rot90(shown[1:4, 2:5], -rotation // 90), stored[y0:y1, x0:x1])


def test_no_align_edits_the_centre_square_of_every_frame(run_cli, toy_runs, tmp_path):
    clip = make_clip(tmp_path / "wide.mp4", 6, (240, 144))
    out = tmp_path / "out.mp4"
    result = run_cli(
        "edit", clip, "--model", toy_runs["both"], "--set", "Eyeglasses=2", "--no-align", "-o", out, "--json"
    )
    assert result.exit_code == 0, result.stderr
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["tracks"][0]["frames"] == [0, 5] and record["tracks"][0]["box"] == [48, 0, 144, 144]
    change = _changed(out, clip)
    assert change[:, :, 60:180].mean() > 3 * change[:, :, :40].mean() + 1  # the square, not its sides

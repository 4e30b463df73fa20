"""`fader edit` and `fader inspect` on clips, and Fader.edit_video: what is kept (frames, timing,
audio), what changes (only the faces), and that the edit holds still on a still face."""

import functools
import json
import os

import av
import cv2
import numpy as np
import pytest
from clips import ASTRONAUT, camera, make_clip, packets, portrait, read_frames, reencode
from clips import frames as clip_frames
from conftest import paste_weights

from fadercli import faces as facelib
from fadercli.api import Fader
from fadercli.errors import NoFaceError
from fadercli.media import clips
from fadercli.media.images import from_array
from fadercli.video import tracking
from fadercli.video.scan import scan

SIZE = (192, 144)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Clips of 12 frames at 25 fps: a still camera with a tone, a pan, a zoom and a slow turn."""
    folder = tmp_path_factory.mktemp("clips")
    out = {"still": make_clip(folder / "still.mp4", 12, SIZE, audio=True)}
    for motion in ("pan", "zoom", "turn"):
        out[motion] = make_clip(folder / f"{motion}.mp4", 12, SIZE, motion=motion)
    return out


@pytest.fixture(scope="module")
def edited(made, toy_runs, tmp_path_factory):
    """Each clip edited by the API (Eyeglasses=2, a 32 px model), and the progress it reported."""
    fader = Fader.load(toy_runs["both"], device="cpu")
    folder = tmp_path_factory.mktemp("edited")
    out = {}
    for name, path in made.items():
        calls: list = []
        result = fader.edit_video(
            path,
            folder / f"{name}.mp4",
            {"Eyeglasses": 2},
            progress=lambda stage, done, total, calls=calls: calls.append((stage, done, total)),
        )
        out[name] = (result, calls)
    return out


def _stream(path):
    with av.open(str(path)) as container:
        s = container.streams.video[0]
        frames = list(container.decode(s))
        return {
            "frames": len(frames),
            "rate": s.average_rate,
            "size": (s.width, s.height),
            "pts": [float(f.pts * f.time_base) for f in frames],
            "rotation": frames[0].rotation,
            "duration": float(s.duration * s.time_base),
            "codec": s.codec_context.name,
        }


@functools.lru_cache
def _portrait_face():
    [found] = facelib.find_faces(portrait())
    return found


def _face_box(t, motion, size=SIZE, face=0.4):
    """The portrait's face box in frame t of a made clip: x0, y0, x1, y1."""
    x, y, w, h = _portrait_face().box
    corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]])
    m = camera(t, size, motion, face)
    moved = corners @ m[:, :2].T + m[:, 2]
    (x0, y0), (x1, y1) = np.floor(moved.min(0)).astype(int), np.ceil(moved.max(0)).astype(int)
    return max(x0, 0), max(y0, 0), x1, y1


def test_the_clip_keeps_its_frames_timing_and_audio(made, edited):
    result, _ = edited["still"]
    source, output = _stream(made["still"]), _stream(result.output)
    assert output["frames"] == source["frames"] == result.frames == 12
    assert output["rate"] == source["rate"] == 25 and output["size"] == source["size"] == SIZE
    assert output["pts"] == pytest.approx(source["pts"], abs=1e-6)  # every frame at its own time
    assert abs(output["duration"] - source["duration"]) <= 1 / 25
    assert output["codec"] == "h264"
    audio = packets(made["still"], "audio")
    assert len(audio) > 5 and packets(result.output, "audio") == audio  # copied, bit for bit
    [track] = result.tracks
    assert (track.first, track.last, track.found) == (0, 11, 12)
    assert track.values["Eyeglasses"] == 2 and track.values["Smiling"] == pytest.approx(track.estimated["Smiling"])


def test_only_the_face_changes(made, edited, tmp_path):
    result, _ = edited["still"]
    out = np.stack(read_frames(result.output)).astype(int)
    same = np.stack(read_frames(reencode(made["still"], tmp_path / "re.mp4"))).astype(int)  # the same settings
    first = from_array(read_frames(made["still"])[0])
    [face] = facelib.find_faces(first)
    near = paste_weights(facelib.alignment_for(face, 32), first) > 0
    # Far from the face: a 16-pixel margin (a macroblock) beyond where the edit is pasted.
    far = ~cv2.dilate(near.astype(np.uint8), np.ones((33, 33), np.uint8)).astype(bool)
    assert far.mean() > 0.3
    difference = np.abs(out - same).max(axis=3)
    # Codec noise only: libx264's output for the same frames varies from run to run here (its inputs
    # hashed identical; docs/experiments.md), measured up to a 99th percentile of 4 away from the face.
    assert difference[:, far].mean() < 0.5 and np.percentile(difference[:, far], 99) <= 5
    assert difference[:, near].mean() > 4 * difference[:, far].mean() + 2  # the face was edited


def test_a_still_face_gets_a_still_crop_and_no_flicker(made, edited, toy_runs):
    info = clips.probe(made["still"])
    found = scan(info, lambda crops: [None] * len(crops), threshold=facelib.DEFAULT_THRESHOLD, crop_size=32)
    [track] = found.tracks
    path = tracking.trajectory(track, 25.0)
    assert np.all(path.weights == 1)  # seen from the first frame to the last: no fade
    # Where the eyes (found once, on the first frame) land in each frame's crop at 256 px.
    [face] = facelib.find_faces(read_frames(made["still"])[0])
    eyes = np.stack(
        [
            facelib.alignment_for(facelib.Face((0, 0, 0, 0), tuple(map(tuple, p)), 1), 256).to_crop(face.points[:2])
            for p in path.points
        ]
    )
    assert eyes.std(axis=0).max() < 0.5
    # Frame-to-frame change inside the face: the edit adds no flicker to the input's codec noise.
    x0, y0, x1, y1 = _face_box(0, "still")
    result, _ = edited["still"]
    before = np.stack(read_frames(made["still"]))[:, y0:y1, x0:x1].astype(float)
    after = np.stack(read_frames(result.output))[:, y0:y1, x0:x1].astype(float)
    assert np.abs(after - before).mean() > 5  # edited ...
    assert np.abs(np.diff(after, axis=0)).mean() <= 1.2 * np.abs(np.diff(before, axis=0)).mean() + 0.1  # ... steadily


@pytest.mark.parametrize("motion", ["pan", "zoom", "turn"])
def test_a_moving_face_is_followed_in_every_frame(made, edited, motion, tmp_path):
    result, calls = edited[motion]
    [track] = result.tracks
    assert (track.first, track.last) == (0, 11)
    out = np.stack(read_frames(result.output)).astype(int)
    same = np.stack(read_frames(reencode(made[motion], tmp_path / "re.mp4"))).astype(int)
    change = np.abs(out - same).max(axis=3)
    strength = []
    for t in range(12):
        x0, y0, x1, y1 = _face_box(t, motion)
        inside = change[t, y0:y1, x0:x1].mean()
        outside = change[t].sum() - change[t, y0:y1, x0:x1].sum()
        assert inside > 4 * outside / (change[t].size - change[t, y0:y1, x0:x1].size)  # the edit is on the face
        strength.append(inside)
    assert max(strength) < 1.6 * min(strength)  # no frame left out, no pulsing
    assert [c[0] for c in calls] == ["tracking"] * 12 + ["editing"] * 12
    assert [c[1] for c in calls] == [*range(1, 13)] * 2 and calls[-1][2] == 12


def test_two_people_are_two_tracks_largest_first(run_cli, toy_runs, tmp_path):
    head = portrait()
    pictures = []
    for t in range(10):
        canvas = np.full((180, 336, 3), 120, np.uint8)
        for scale, x in ((0.55, t), (0.35, 176)):
            m = camera(0, (160, 180), "still", scale)
            canvas[:, x : x + 160] = cv2.warpAffine(
                head, m, (160, 180), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
            )
        pictures.append(canvas)
    clip = make_clip(tmp_path / "two.mp4", 10, (336, 180), pictures=pictures)
    inspected = run_cli("inspect", clip, "--model", toy_runs["both"], "--json")
    assert inspected.exit_code == 0, inspected.stderr
    records = [json.loads(line) for line in inspected.stdout.splitlines()]
    assert [r["track"] for r in records] == [0, 1] and all(r["frames"] == [0, 9] for r in records)
    assert records[0]["box"][2] > 1.3 * records[1]["box"][2]  # the larger face first
    assert records[0]["box"][0] < 168 < records[1]["box"][0]
    assert set(records[0]["estimated"]) == {"Eyeglasses", "Smiling"} and set(records[0]["probabilities"]) == {
        "Eyeglasses",
        "Smiling",
    }
    text = run_cli("inspect", clip, "--model", toy_runs["both"])
    assert text.stdout.splitlines()[1].startswith(f"{clip}  track 1  frames 0-9  Eyeglasses ")
    # --face 1: only the smaller face, on the right, changes.
    result = run_cli(
        "edit", clip, "--model", toy_runs["both"], "--set", "Eyeglasses=2", "--face", "1", "-o", tmp_path / "one.mp4"
    )
    assert result.exit_code == 0, result.stderr
    change = np.abs(
        np.stack(read_frames(tmp_path / "one.mp4")).astype(int)
        - np.stack(read_frames(reencode(clip, tmp_path / "re.mp4"))).astype(int)
    ).max(axis=3)
    # The left face unedited: codec noise, 0.3-0.45 from run to run here (libx264 is not repeatable
    # in the pipeline, docs/experiments.md), against ~14 where a face is edited.
    assert change[:, :, 200:].mean() > 5 and change[:, :, :160].mean() < 1
    missing = run_cli(
        "edit", clip, "--model", toy_runs["both"], "--set", "Eyeglasses=2", "--face", "2", "-o", tmp_path / "no.mp4"
    )
    assert missing.exit_code == NoFaceError.exit_code and "no face 2" in missing.stderr
    assert not (tmp_path / "no.mp4").exists()


def test_a_face_lost_for_a_while_fades_out_and_back_in(toy_runs, tmp_path):
    """A hand over the face for 8 frames (not a scene cut: the rest of the picture stays)."""
    pictures = list(clip_frames(30, SIZE))
    x0, y0, x1, y1 = _face_box(0, "still")
    for t in range(12, 20):
        pictures[t][y0 - 4 : y1 + 4, x0 - 4 : x1 + 4] = (200, 160, 140)
    clip = make_clip(tmp_path / "hidden.mp4", 30, SIZE, pictures=pictures)
    info = clips.probe(clip)
    found = scan(info, lambda crops: [None] * len(crops), threshold=facelib.DEFAULT_THRESHOLD, crop_size=32)
    [track] = found.tracks  # the same face before and after: one track, its values estimated once
    path = tracking.trajectory(track, 25.0)
    weights = dict(zip(path.frames.tolist(), path.weights.tolist()))
    assert all(t not in weights for t in range(12, 20))  # not edited while hidden
    assert weights[0] == 1 and weights[29] == 1  # the clip's ends: no fade
    assert 0 < weights[11] < weights[10] < weights[8] <= 1 and 0 < weights[20] < weights[21] < weights[23] <= 1
    result = Fader.load(toy_runs["both"], device="cpu").edit_video(clip, tmp_path / "out.mp4", {"Eyeglasses": 2})
    change = np.abs(
        np.stack(read_frames(result.output)).astype(int)
        - np.stack(read_frames(reencode(clip, tmp_path / "re.mp4"))).astype(int)
    )[:, y0:y1, x0:x1].mean(axis=(1, 2, 3))
    steps = np.abs(np.diff(change))
    assert change[5] > 3 and change[15] < 0.5 * change[5]
    assert steps.max() < 0.6 * change[5]  # fades, no pop


def test_a_scene_cut_ends_the_track_without_a_fade(toy_runs, tmp_path):
    clip = make_clip(tmp_path / "cut.mp4", 16, SIZE, cut=9)
    info = clips.probe(clip)
    found = scan(info, lambda crops: [None] * len(crops), threshold=facelib.DEFAULT_THRESHOLD, crop_size=32)
    [track] = found.tracks
    path = tracking.trajectory(track, 25.0)
    assert path.frames.tolist() == list(range(9)) and np.all(path.weights == 1)
    assert tracking.SceneCuts()(read_frames(clip)[0]) is False


def test_no_face_in_any_frame(run_cli, toy_runs, tmp_path):
    clip = make_clip(tmp_path / "empty.mp4", 6, SIZE, cut=0, audio=True)
    refused = run_cli("edit", clip, "--model", toy_runs["both"], "--set", "Smiling=1", "--out-dir", tmp_path / "out")
    assert refused.exit_code == NoFaceError.exit_code
    errors = [line for line in refused.stderr.splitlines() if "error" in line]
    assert errors == [f"fader: error: no face found in any frame of {clip} (--allow-no-face writes it unedited)"]
    assert os.listdir(tmp_path / "out") == []
    kept = run_cli(
        "edit",
        clip,
        "--model",
        toy_runs["both"],
        "--set",
        "Smiling=1",
        "--out-dir",
        tmp_path / "out",
        "--allow-no-face",
    )
    assert kept.exit_code == 0, kept.stderr
    assert "written unedited" in kept.stderr
    written = tmp_path / "out" / "empty_fader.mp4"
    assert _stream(written)["frames"] == 6 and packets(written, "audio") == packets(clip, "audio")


def test_a_folder_of_photos_and_clips(run_cli, toy_runs, made, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(made["pan"].read_bytes())
    (folder / "b.png").write_bytes(ASTRONAUT.read_bytes())
    result = run_cli(
        "edit", folder, "--model", toy_runs["both"], "--set", "Smiling=1", "--out-dir", tmp_path / "out", "--json"
    )
    assert result.exit_code == 0, result.stderr
    records = {json.loads(line)["input"]: json.loads(line) for line in result.stdout.splitlines()}
    clip = records[str(folder / "a.mp4")]
    assert clip["output"] == str(tmp_path / "out" / "a_fader.mp4") and clip["frames"] == 12 and clip["fps"] == 25
    assert clip["tracks"][0]["frames"] == [0, 11] and clip["tracks"][0]["values"]["Smiling"] == 1
    assert records[str(folder / "b.png")]["faces"][0]["values"]["Smiling"] == 1
    assert sorted(os.listdir(tmp_path / "out")) == ["a_fader.mp4", "b_fader.png"]
    assert "2 of 2 input(s) edited" in result.stderr


def test_a_face_walking_in_is_followed_from_its_first_frame(tmp_path):
    """A second face slides in from the right edge while the first stays: one track for it, from
    (about) the first frame a detector sees it in, faded in; the first face's track untouched."""
    head = portrait()
    patch = cv2.warpAffine(
        head, camera(0, (100, 120), "still", 0.4), (100, 120), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    pictures = []
    for t in range(30):
        canvas = np.full((180, 320, 3), 150, np.uint8)
        canvas[30:150, 20:120] = patch
        x = max(220, 320 - 6 * t)
        canvas[40:160, x:320] = cv2.flip(patch, 1)[:, : 320 - x]
        pictures.append(canvas)
    clip = make_clip(tmp_path / "walk.mp4", 30, (320, 180), pictures=pictures)
    frames = read_frames(clip)
    seen = next(t for t, f in enumerate(frames) if any(face.box[0] > 160 for face in facelib.find_faces(f)))
    found = scan(
        clips.probe(clip), lambda crops: [None] * len(crops), threshold=facelib.DEFAULT_THRESHOLD, crop_size=32
    )
    assert len(found.tracks) == 2
    left, right = sorted(found.tracks, key=lambda tr: tr.rows[-1][0])
    assert (left.frames[0], left.frames[-1], len(left.frames)) == (0, 29, 30)
    assert right.frames[-1] == 29 and len(right.frames) == 30 - right.frames[0]  # found in every frame since
    assert right.frames[0] <= seen + 1
    weights = tracking.trajectory(right, 25.0).weights
    assert 0 < weights[0] < weights[2] < weights[-1] == 1  # faded in: it came into a picture already there

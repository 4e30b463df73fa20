"""The camera: a stream of frames edited one at a time (video/live.py, Fader.live) and the WebSocket of
`fader serve` that carries a page's camera to it (serve/camera.py), through the framework's test
client, on the tiny 64 px model trained on toy faces. The page itself, with Chromium's fake camera,
is in test_serve_browser.py."""

from __future__ import annotations

import io
import json
import struct
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import clips
import cv2
import numpy as np
import pytest
import torch
from conftest import box_masks
from fastapi.testclient import TestClient
from PIL import Image
from starlette.testclient import WebSocketDenialResponse

from fadercli import faces as facelib
from fadercli.api import Fader
from fadercli.serve import camera
from fadercli.serve.app import Settings, create_app
from fadercli.serve.models import ModelPool
from fadercli.video import tracking
from fadercli.video.live import LiveEditor

HOST = "http://127.0.0.1"
SIZE = (320, 240)
URL = "ws://127.0.0.1/api/camera"


@pytest.fixture(autouse=True)
def _any_rate(monkeypatch):
    """Frames come as fast as a test sends them (the rate bound has a test of its own)."""
    monkeypatch.setattr(camera, "MAX_FPS", 1e6)


class AtOnce:
    """An executor that runs what it is given at once: a full detection asked for beside the stream
    is done by the time the next frame comes, whatever the machine's load (the thread itself has a
    test of its own)."""

    def submit(self, fn, *args, **kwargs) -> Future:
        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as e:
            future.set_exception(e)
        return future


@pytest.fixture(autouse=True)
def _detections_land_at_the_next_frame(monkeypatch):
    monkeypatch.setattr(tracking, "detections", AtOnce)


@pytest.fixture(scope="module")
def fader(toy_runs):
    return Fader.load(toy_runs["smiling"], device="cpu", quiet=True)


# ---------------------------------------------------------------- the library: a stream of frames


def test_a_stream_is_followed_and_edited_where_its_face_is_without_flicker(fader, monkeypatch):
    monkeypatch.setattr(tracking, "LIVE_HISTORY", 2)
    frames = list(clips.frames(14, SIZE))
    live = fader.live()
    first = live.edit(frames[0], at=0.0)  # its full detection runs beside the stream: no face yet
    assert first.faces == [] and np.array_equal(first.image, frames[0]) and first.image is not frames[0]
    plain = live.edit(frames[1], at=0.04)  # no values: followed and measured, not edited
    [face] = plain.faces
    assert face.values is None and set(face.estimated) == {"Smiling"} and np.array_equal(plain.image, frames[1])

    edited = [live.edit(frame, {"Smiling": 2.0}, at=0.04 * t) for t, frame in enumerate(frames[2:], 2)]
    assert {f.track for e in edited for f in e.faces} == {face.track}  # one face, followed
    weights = [e.faces[0].weight for e in edited]
    assert weights == sorted(weights) and weights[-4:] == [1.0] * 4  # faded in once, then edited in full
    for e, frame in zip(edited, frames[2:]):
        [f] = e.faces
        assert f.values == {"Smiling": 2.0}
        change = np.abs(e.image.astype(int) - frame).max(axis=2)
        inside, far = box_masks(f.box, change.shape)
        assert not change[far].any()  # nothing far from the face changes...
        assert f.weight < 0.05 or change[inside].mean() > 2  # ... and the face does, once faded in
    # A still camera gives still edits: its landmarks filtered and its values measured once settle.
    assert all(np.array_equal(edited[-4].image, e.image) for e in edited[-3:])
    # Nothing is kept but what following needs: no frame for following back, a short history.
    [track] = live.tracker.live
    assert len(live.tracker.recent) == 0 and len(track.frames) <= 2 * tracking.LIVE_HISTORY


def test_a_face_fades_in_when_it_comes_and_out_when_it_goes_and_is_let_go(fader):
    frames = list(clips.frames(1, SIZE))
    with_face = frames[0]
    x, y = int(SIZE[0] / 2 - 45), int(SIZE[1] / 2 - 55)
    without = with_face.copy()
    without[y : y + 110, x : x + 90] = without[y : y + 110, x : x + 90].mean(axis=(0, 1))  # not a cut: same colours
    live = fader.live(fps=25)
    stream = [without] * 3 + [with_face] * 20 + [without] * 25
    weights = []
    for t, rgb in enumerate(stream):
        out = live.edit(rgb, {"Smiling": 2.0}, at=t / 25)
        weights.append(out.faces[0].weight if out.faces else None)
    seen = [w for w in weights if w is not None]
    came = weights.index(seen[0])
    assert 3 <= came < 23 and seen[0] < 0.1  # it comes in at (almost) nothing...
    assert weights[came : came + 8] == sorted(weights[came : came + 8]) and 1.0 in weights[came:23]  # ...up to full
    gone = weights[23:]
    assert gone[0] == 1.0 and gone[:6] == sorted(gone[:6], reverse=True) and min(w or 0 for w in gone[:10]) < 0.1
    assert weights[-1] is None and not live.follows and not live.tracker.live and not live.tracker.ended


def test_a_small_soft_moving_face_is_edited_in_every_frame_without_fading(fader, tmp_path):
    """A face about 40 px wide in 320 px frames, soft and grainy as a cheap webcam shows a face far from
    it, panning: the detector finds it in every frame, and the live editor follows it between its
    detections at the size the detector found it (it was edited in a third of the frames, fading
    out a few frames after each detection and in again at the next)."""
    pan = list(clips.frames(30, SIZE, "pan", face=0.2, soft=True))
    frames = clips.read_frames(clips.make_clip(tmp_path / "far.mp4", size=SIZE, fps=15, pictures=pan + pan[::-1]))
    found = [facelib.find_faces(frame) for frame in frames[::3]]
    assert all(len(faces) == 1 and 30 < faces[0].box[2] < 50 for faces in found), found
    live = fader.live(fps=15)
    weights = []
    for t, frame in enumerate(frames):
        out = live.edit(frame, {"Smiling": 2.0}, at=t / 15)
        weights.append(max((f.weight for f in out.faces if f.values), default=0.0))
    edited = [w > 0 for w in weights]
    assert sum(edited) >= 0.95 * len(frames), weights
    first = edited.index(True)
    full = weights.index(1.0)
    assert all(edited[first:]) and weights[first:full] == sorted(weights[first:full])  # in once...
    assert weights[full:] == [1.0] * (len(frames) - full), weights  # ... and never out


def test_a_full_detection_runs_beside_the_stream_and_holds_no_frame_back(fader, monkeypatch):
    one = next(clips.frames(1, SIZE))
    x, y = int(SIZE[0] / 2 - 45), int(SIZE[1] / 2 - 55)
    faceless = one.copy()
    faceless[y : y + 110, x : x + 90] = faceless[y : y + 110, x : x + 90].mean(axis=(0, 1))  # not a cut
    alone, pair = np.hstack([one, faceless]), np.hstack([one, one])
    beside = ThreadPoolExecutor(1)
    monkeypatch.setattr(tracking, "detections", lambda: beside)
    live = fader.live(fps=25)
    seq = iter(range(10**6))

    def edit(frame):
        return live.edit(frame, {"Smiling": 2.0}, at=next(seq) / 25)

    deadline = time.monotonic() + 60
    while not edit(alone).faces:  # the first detection lands when it is done, the frames going on meanwhile
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started, release = threading.Event(), threading.Event()
    find_faces = facelib.find_faces

    def slow(*args, **kwargs):
        assert threading.current_thread() is not threading.main_thread(), "a frame waits for its detection"
        started.set()
        release.wait(60)
        return find_faces(*args, **kwargs)

    monkeypatch.setattr(facelib, "find_faces", slow)
    try:
        for _ in range(tracking.DETECT_EVERY + 1):  # a second face comes; the next detection is asked for...
            edit(pair)
        assert started.is_set()
        # ... and while it runs (held here), frames are edited as they come, the face followed in each.
        for _ in range(2 * tracking.DETECT_EVERY):
            out = edit(pair)
            assert len(out.faces) == 1 and out.faces[0].box[0] < SIZE[0] and out.faces[0].values
        assert not release.is_set()
    finally:
        release.set()
    while len(edit(pair).faces) < 2:  # the detection done, the second face joins at the next frame
        assert time.monotonic() < deadline
        time.sleep(0.01)
    beside.shutdown()


def test_the_forward_filter_steadies_a_still_face_and_follows_a_moving_one():
    rng = np.random.default_rng(0)
    smooth = tracking.OneEuro()
    still = [smooth(np.array([100.0]) + rng.normal(0, 1, 1), t / 25, 100.0) for t in range(100)]
    assert np.std(still[50:]) < 0.3  # jitter of 1 px cut to a fraction
    moving = [smooth(np.array([100.0 + 4 * t]), (100 + t) / 25, 100.0) for t in range(25)]
    assert abs(moving[-1][0] - (100 + 4 * 24)) < 12  # a face crossing at 100 px/s lags by little


# ---------------------------------------------------------------- the socket


def _client(model, **settings) -> TestClient:
    pool = ModelPool([str(model)], device=torch.device("cpu"), threshold=None)
    settings.setdefault("allowed_hosts", ("127.0.0.1", "localhost"))
    return TestClient(create_app(pool, Settings(**settings)), base_url=HOST)


def _jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _frame(seq, rgb=None, values=None, body=None) -> bytes:
    return camera.pack({"seq": seq, "values": values or {}}, _jpeg(rgb) if body is None else body)


def _reply(socket) -> tuple[dict, np.ndarray | None]:
    message = socket.receive_bytes()
    (length,) = struct.unpack_from(">I", message)
    header = json.loads(message[4 : 4 + length])
    body = message[4 + length :]
    return header, (np.asarray(Image.open(io.BytesIO(body)).convert("RGB")) if body else None)


@pytest.fixture(scope="module")
def client(toy_runs):
    with _client(toy_runs["smiling"]) as c:
        yield c


def test_frames_come_back_edited_with_the_values_they_carry(client):
    frame = next(clips.frames(1, SIZE))
    with client.websocket_connect(URL) as socket:
        hello = json.loads(socket.receive_text())
        assert hello["side"] == 320 and hello["fps"] == camera.MAX_FPS and hello["max_bytes"] == camera.MAX_FRAME_BYTES
        assert hello["max_pixels"] == camera.MAX_FRAME_PIXELS
        assert [a["name"] for a in hello["attributes"]] == ["Smiling"]
        socket.send_bytes(_frame(0, frame))
        header, plain = _reply(socket)
        assert header["seq"] == 0 and header["faces"] == []  # its detection runs beside the stream
        assert plain.shape == frame.shape and np.abs(plain.astype(int) - frame).mean() < 3  # only JPEG's loss
        socket.send_bytes(_frame(1, frame))
        header, plain = _reply(socket)
        [face] = header["faces"]
        assert header["seq"] == 1 and face["values"] is None and set(face["estimated"]) == {"Smiling"}
        time.sleep(tracking.FADE_SECONDS + 0.05)  # the face, new to the stream, has faded in by the next frame
        socket.send_bytes(_frame(2, frame, {"Smiling": 2.0}))
        header, edited = _reply(socket)
        [face] = header["faces"]
        assert header["seq"] == 2 and face["values"] == {"Smiling": 2.0} and face["weight"] == 1.0
        assert header["server_ms"] > 0
    change = np.abs(edited.astype(int) - plain).max(axis=2)
    inside, far = box_masks(face["box"], change.shape, 1.5)
    assert change[inside].mean() > 2 and not change[far].any()  # the same JPEG blocks far from the face


def test_bad_frames_are_answered_in_one_line_and_the_stream_goes_on(client, monkeypatch):
    frame = next(clips.frames(1, SIZE))
    monkeypatch.setattr(camera, "MAX_FRAME_BYTES", 500_000)
    big = np.random.default_rng(0).integers(0, 256, (960, 1280, 3), np.uint8)
    huge = cv2.resize(frame, (1400, 1000))
    cases = [
        (b"\x00\x01", "bad_frame"),
        (struct.pack(">I", 9999) + b"{}", "bad_frame"),
        (camera.pack({"seq": 1, "values": {"Smiling": "more"}}, _jpeg(frame)), "bad_value"),
        (camera.pack({"seq": 1, "values": {"Smiling": True}}, _jpeg(frame)), "bad_value"),
        (_frame(1, frame, {"Smilling": 1.0}), "unknown_attribute"),
        (_frame(1, body=b"GIF89a not really"), "not_an_image"),
        (_frame(1, body=_jpeg(huge)), "too_many_pixels"),
        (_frame(1, body=_jpeg(big)), "too_large"),
    ]
    with client.websocket_connect(URL) as socket:
        socket.receive_text()
        for message, code in cases:
            socket.send_bytes(message)
            header, body = _reply(socket)
            assert header["code"] == code and body is None, (code, header)
            assert "\n" not in header["error"] and "Traceback" not in header["error"]
        socket.send_text("a frame?")
        assert _reply(socket)[0]["code"] == "bad_frame"
        socket.send_bytes(_frame(7, frame, {"Smiling": 1.0}))
        header, edited = _reply(socket)
        assert header["seq"] == 7 and edited.shape == frame.shape


def test_the_client_is_asked_for_more_pixels_while_the_faces_are_small(client, monkeypatch):
    monkeypatch.setattr(camera, "ASK_EVERY", 0.0)  # asked as soon as the faces call for it

    def picture(side, face):
        return next(clips.frames(1, (side, side * 3 // 4), face=face))

    with client.websocket_connect(URL) as socket:
        assert json.loads(socket.receive_text())["side"] == 320
        socket.send_bytes(_frame(0, picture(320, 0.1)))  # faces about 24 px tall: under the 64 px crop's
        assert _reply(socket)[0]["faces"] == []
        socket.send_bytes(_frame(1, picture(320, 0.1)))
        side = json.loads(socket.receive_text())["side"]  # asked before the frame's reply
        header, image = _reply(socket)
        assert header["seq"] == 1 and header["faces"] and image.shape == (240, 320, 3)
        assert 320 * camera.ASK_CHANGE <= side <= camera.ASK_MAX_SIDE and side % 32 == 0
        socket.send_bytes(_frame(2, picture(side, 0.1)))  # the same faces in that many more pixels: enough
        header, image = _reply(socket)  # (a text message here would fail this: no second ask)
        assert header["seq"] == 2 and header["faces"] and image.shape == (side * 3 // 4, side, 3)
        asks = []
        for seq in range(3, 3 + 2 * tracking.DETECT_EVERY):  # a face come close (found at the next detection)...
            socket.send_bytes(_frame(seq, picture(side, 0.4)))
            message = socket.receive()
            if message.get("text"):
                asks.append(json.loads(message["text"]))
                message = socket.receive()
            assert camera.unpack(message["bytes"])[0]["seq"] == seq
        assert asks == [{"side": 320}]  # ... fewer again, down to the first side


def test_frames_faster_than_the_rate_bound_are_dropped(client, monkeypatch):
    monkeypatch.setattr(camera, "MAX_FPS", 0.001)  # one frame in 800 s: the second comes too soon
    frame = next(clips.frames(1, SIZE))
    with client.websocket_connect(URL) as socket:
        socket.receive_text()
        socket.send_bytes(_frame(0, frame))
        socket.send_bytes(_frame(1, frame))
        replies = {h["seq"]: h for h, _ in (_reply(socket), _reply(socket))}
    assert replies[1] == {"seq": 1, "dropped": "rate"} and replies[0]["faces"] == []


@pytest.fixture
def gate(monkeypatch):
    """LiveEditor.edit held on its first frame until released: {"started", "release", "edited" (values seen)}."""
    started, release, edited = threading.Event(), threading.Event(), []
    edit = LiveEditor.edit

    def held(self, rgb, values=None, shift=None, *, at=None):
        edited.append(values)
        if len(edited) == 1:
            started.set()
            release.wait(60)
        return edit(self, rgb, values, shift, at=at)

    monkeypatch.setattr(LiveEditor, "edit", held)
    yield {"started": started, "release": release, "edited": edited}
    release.set()


def test_a_newer_frame_replaces_one_waiting_which_is_never_edited(toy_runs, gate):
    frame = next(clips.frames(1, SIZE))
    with _client(toy_runs["smiling"]) as client, client.websocket_connect(URL) as socket:
        socket.receive_text()
        socket.send_bytes(_frame(0, frame, {"Smiling": 0.0}))
        assert gate["started"].wait(30)  # frame 0 is being edited
        socket.send_bytes(_frame(1, frame, {"Smiling": 1.0}))  # waits...
        socket.send_bytes(_frame(2, frame, {"Smiling": 2.0}))  # ...and is replaced by this one
        assert _reply(socket)[0] == {"seq": 1, "dropped": "replaced"}
        gate["release"].set()
        assert [_reply(socket)[0]["seq"] for _ in range(2)] == [0, 2]
    assert gate["edited"] == [{"Smiling": 0.0}, {"Smiling": 2.0}]


def test_a_client_that_leaves_frees_its_work_at_once(toy_runs, gate):
    frame = next(clips.frames(1, SIZE))
    with _client(toy_runs["smiling"], cameras=1, workers=1, queue=0) as client:
        work = client.app.state.work
        with client.websocket_connect(URL) as socket:
            socket.receive_text()
            socket.send_bytes(_frame(0, frame, {"Smiling": 0.0}))
            assert gate["started"].wait(30)
            socket.send_bytes(_frame(1, frame, {"Smiling": 1.0}))  # waiting when the client goes
        # Gone while its frame is edited: its place is free at once, and its waiting frame is dropped.
        with client.websocket_connect(URL) as again:
            again.receive_text()
            gate["release"].set()
            deadline = time.monotonic() + 30
            while work.pending and time.monotonic() < deadline:
                time.sleep(0.01)
            assert work.pending == 0
            again.send_bytes(_frame(5, frame, {"Smiling": 2.0}))
            assert _reply(again)[0]["seq"] == 5
    assert gate["edited"] == [{"Smiling": 0.0}, {"Smiling": 2.0}]  # frame 1 was never edited


def _refused(client, headers=None) -> tuple[int, dict]:
    with pytest.raises(WebSocketDenialResponse) as refusal, client.websocket_connect(URL, headers=headers or {}):
        pass
    return refusal.value.status_code, refusal.value.json()


def test_the_socket_is_guarded_as_the_api_is(toy_runs):
    token = "camera-token-1"
    with _client(toy_runs["smiling"], token=token, cookie="fader_token_1", cameras=1) as client:
        status, body = _refused(client)
        assert status == 401 and body["code"] == "unauthorized"
        assert _refused(client, {"Authorization": "Bearer wrong-token"})[0] == 401
        cookie = {"Cookie": f"fader_token_1={token}"}
        for origin in ("https://evil.example", "http://127.0.0.1:1234", "null"):
            status, body = _refused(client, {**cookie, "Origin": origin})
            assert status == 403 and body["code"] == "cross_site", origin
        assert _refused(client, {**cookie, "Host": "evil.example"})[1]["code"] == "bad_host"
        with client.websocket_connect(URL, headers={**cookie, "Origin": HOST}) as socket:
            assert "side" in json.loads(socket.receive_text())
            status, body = _refused(client, {"Authorization": f"Bearer {token}"})  # one camera at a time
            assert status == 503 and body["code"] == "busy" and "--cameras" in body["error"]
        with client.websocket_connect(URL, headers={"Authorization": f"Bearer {token}"}) as socket:
            assert "side" in json.loads(socket.receive_text())
    with _client(toy_runs["smiling"], cameras=0) as client:
        assert _refused(client)[0] == 503

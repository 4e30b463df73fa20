"""The page in a real browser: Debian's chromium, driven by Playwright, against `fader serve` run as a
process. Never `playwright install`: the browser is the system's (.ci/run installs it)."""

import base64
import io
import json
import os
import signal
import subprocess
import sys
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, ROOT, box_masks
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ASTRONAUT = DATA / "astronaut.png"
SCREENSHOT = ROOT / "screenshots" / "serve.png"  # ignored by git: for a person to look at

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")


@contextmanager
def fader_serve(model: Path, home: Path, **env: str):
    """`fader serve` on a free port: yields the link it prints; Ctrl-C (SIGINT) at the end must stop it cleanly."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fadercli", "serve", "--model", str(model), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, FADER_HOME=str(home), **env),
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read()
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        stderr = process.stderr.read()
    assert code == 0, stderr
    assert "Traceback" not in stderr and "fader: stopped" in stderr


@pytest.fixture
def served(toy_runs, tmp_path):
    with fader_serve(toy_runs["smiling"], tmp_path / "home") as url:
        yield url


def _post(url: str, body: dict) -> bytes:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def _idle(page) -> None:
    """Wait until the page has nothing in flight and shows its newest render."""
    page.wait_for_function("() => !renders.busy && !renders.pending && renders.shown === renders.sent", timeout=30000)


def test_sliding_in_a_browser(served):
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 820}, accept_downloads=True)
            page.set_default_timeout(30000)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(served)
            page.wait_for_function("() => document.getElementById('status').textContent.startsWith('fader')")
            page.set_input_files("#file", str(ASTRONAUT))
            slider = page.get_by_role("slider", name="Smiling")  # labelled: an accessible name
            slider.wait_for()
            page.wait_for_function("() => document.getElementById('photo').src.startsWith('blob:')")
            assert page.locator("#boxes .face").count() == 1  # the face is outlined
            original = page.evaluate("state.originalURL")

            # Drag the thumb across: the image must change while the button is still down.
            page.evaluate("""() => { window.shownDuringDrag = new Set();
                new MutationObserver(() => shownDuringDrag.add(document.getElementById('photo').src))
                    .observe(document.getElementById('photo'), {attributes: true, attributeFilter: ['src']}); }""")
            box = slider.bounding_box()
            lo, hi = -1.0, 2.0
            value = float(slider.input_value())
            x = box["x"] + 8 + (box["width"] - 16) * (value - lo) / (hi - lo)
            y = box["y"] + box["height"] / 2
            page.mouse.move(x, y)
            page.mouse.down()
            for step in range(1, 13):
                page.mouse.move(x + (box["x"] + box["width"] - 4 - x) * step / 12, y)
                page.wait_for_timeout(80)
            changed_during_drag = page.evaluate("shownDuringDrag.size")
            page.mouse.up()
            assert changed_during_drag >= 2, "the photo did not redraw while the slider moved"
            _idle(page)
            assert float(slider.input_value()) > value + 1

            # The keyboard moves it too.
            slider.focus()
            for _ in range(20):
                page.keyboard.press("ArrowLeft")
            _idle(page)
            faces = page.evaluate("faceValues()")
            assert 0.5 < faces["0"]["Smiling"] < 2.0

            # What the page shows is the API's render for the page's final value, byte for byte.
            photo_id, size = page.evaluate("[state.photo.id, state.previewSize]")
            shown = bytes(
                page.evaluate("""async () => {
                const r = await fetch(document.getElementById('photo').src);
                return Array.from(new Uint8Array(await r.arrayBuffer())); }""")
            )
            api = _post(
                f"{served}api/photos/{photo_id}/render",
                {"faces": faces, "format": "jpeg", "max_size": size, "quality": 90},
            )
            assert shown == api
            assert page.locator("#timing").inner_text().endswith("round trip")

            # Hold to compare shows the original; letting go, the edit again.
            page.keyboard.down("Backslash")
            assert page.evaluate("document.getElementById('photo').src") == original
            assert page.locator("#badge").is_visible()
            page.keyboard.up("Backslash")
            assert page.evaluate("document.getElementById('photo').src") != original

            # The download is the full-resolution edit.
            with page.expect_download() as download:
                page.click("#download")
            data = Path(download.value.path()).read_bytes()
            assert download.value.suggested_filename == "astronaut_fader.png"
            full = _post(f"{served}api/photos/{photo_id}/render", {"faces": faces, "format": "png", "max_size": None})
            assert data == full
            with Image.open(io.BytesIO(data)) as im:
                assert im.size == (512, 512)
                assert not np.array_equal(np.asarray(im), np.asarray(Image.open(ASTRONAUT)))

            # Reset brings the face back to its own values, and the photo back to itself.
            page.click("#reset-face")
            _idle(page)
            assert page.evaluate("faceValues()") == {}
            SCREENSHOT.parent.mkdir(exist_ok=True)
            slider.focus()
            page.keyboard.press("ArrowRight")
            page.keyboard.press("PageUp")
            _idle(page)
            page.screenshot(path=str(SCREENSHOT))

            # The loaded run's curves and card, opened from the side panel.
            page.click("#about summary")
            page.wait_for_function(
                "() => { const i = document.querySelector('#about img'); return i && i.naturalWidth > 600; }"
            )
            page.wait_for_function(
                "() => (document.querySelector('#about pre') || {}).textContent?.includes('## Evaluation')"
            )
            assert "library_name: fadercli" in page.locator("#about pre").inner_text()
            assert not errors, errors
        finally:
            browser.close()


# ---------------------------------------------------------------- the camera

CAMERA_TOKEN = "camera-test-token"
OPENS = """async (url) => await new Promise((done) => {
    const socket = new WebSocket(url);
    socket.onopen = () => { done("open"); socket.close(); };
    socket.onclose = (e) => done(`closed ${e.code}`);
})"""


def _y4m(path: Path, pictures) -> Path:
    """A raw YUV 4:2:0 clip, as Chromium's fake camera reads it: the frames converted by PyAV."""
    av = pytest.importorskip("av")
    pictures = list(pictures)
    height, width = pictures[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F15:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in pictures:
            planes = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()
            f.write(b"FRAME\n" + planes.tobytes())
    return path


def _canvas(page) -> np.ndarray:
    url = page.evaluate("document.getElementById('live-canvas').toDataURL('image/png')")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def test_the_camera_in_a_browser(toy_runs, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    websockets = pytest.importorskip("websockets.sync.client")
    from clips import frames

    pictures = list(frames(15, (640, 480)))  # a still portrait: one second, looped by the fake camera
    clip = _y4m(tmp_path / "camera.y4m", pictures)
    with fader_serve(toy_runs["smiling"], tmp_path / "home", FADER_TOKEN=CAMERA_TOKEN) as link:
        assert link.endswith(f"?token={CAMERA_TOKEN}")
        base = link.split("?", 1)[0]
        socket_url = base.replace("http://", "ws://") + "api/camera"
        args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={clip}"]
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 820}, accept_downloads=True)
                context.grant_permissions(["camera"])
                page = context.new_page()
                page.set_default_timeout(30000)
                errors = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(link)  # the token's link: the cookie
                page.wait_for_function("() => document.getElementById('status').textContent.startsWith('fader')")
                page.click("#camera-start")
                # The face is found beside the stream, a few frames in, and fades in: wait until it is full.
                page.wait_for_function("() => camera.faces.length === 1 && camera.faces[0].weight === 1")
                before, [face] = _canvas(page), page.evaluate("camera.faces")
                assert before.shape == (240, 320, 3)  # scaled down in the browser to what the 64 px model needs
                assert face["values"] is None

                # A slider moved: the frames after it come back with the face edited, and only the face.
                slider = page.get_by_role("slider", name="Smiling")
                slider.focus()
                page.keyboard.press("End")
                moved = page.evaluate("camera.seq")
                page.wait_for_function(f"() => camera.drawn > {moved} + 2")
                after, [face] = _canvas(page), page.evaluate("camera.faces")
                assert face["values"]["Smiling"] == float(slider.input_value())
                inside, far = box_masks(face["box"], after.shape, 1.5)
                change = np.abs(after - before).max(axis=2)
                assert change[inside].mean() > 2 and change[far].max() <= 2, (change[inside].mean(), change[far].max())

                # Fresh frames: none shown was taken more than 0.5 s before; the page says how it goes.
                page.wait_for_function("() => camera.drawnCount >= 20")
                assert page.evaluate("camera.maxAge") < 500
                stats = page.locator("#live-stats").inner_text()
                assert "frames/s" in stats and stats.endswith("ms round trip"), stats
                SCREENSHOT.parent.mkdir(exist_ok=True)
                page.screenshot(path=str(SCREENSHOT.with_name("camera.png")))

                # The snapshot: the camera's own frame at its full size, edited.
                with page.expect_download() as download:
                    page.click("#snapshot")
                assert download.value.suggested_filename.endswith("_fader.png")
                with Image.open(download.value.path()) as im:
                    snap = np.asarray(im.convert("RGB")).astype(int)
                assert snap.shape == (480, 640, 3)
                inside, far = box_masks([2 * v for v in face["box"]], snap.shape, 1.5)
                change = np.abs(snap - pictures[0]).max(axis=2)
                assert change[inside].mean() > 2 * change[far].mean() + 2

                # The server may ask for more pixels (small faces): the frames sent are scaled to that.
                page.evaluate("onCameraMessage(camera.socket, { data: JSON.stringify({ side: 480 }) })")
                page.wait_for_function("() => document.getElementById('live-canvas').width === 480")
                assert _canvas(page).shape == (360, 480, 3) and page.evaluate("camera.hello.fps") == 30  # the rest kept

                # The socket: the page's own origin with the cookie opens it; another site (here another
                # port of this machine, whose requests carry the cookie) or no token does not.
                assert page.evaluate(OPENS, socket_url) == "open"
                page.route(
                    "http://127.0.0.1:2/",
                    lambda route: route.fulfill(body="<p>another site</p>", content_type="text/html"),
                )
                page.goto("http://127.0.0.1:2/")
                assert page.evaluate(OPENS, socket_url) == "closed 1006"
                stranger = browser.new_page()
                stranger.goto(base)
                assert stranger.evaluate(OPENS, socket_url) == "closed 1006"
                assert not errors, errors
            finally:
                browser.close()
        # What the browser does not show: the refusals are the API's answers.
        other_site = {"Origin": "http://127.0.0.1:2", "Authorization": f"Bearer {CAMERA_TOKEN}"}
        for headers, status in ((other_site, 403), ({}, 401)):
            with pytest.raises(websockets.InvalidStatus) as refusal:
                websockets.connect(socket_url, additional_headers=headers, open_timeout=10)
            assert refusal.value.response.status_code == status

"""The page in a real browser: Debian's chromium, driven by Playwright, against `fader serve` run as a
process. Never `playwright install`: the browser is the system's (.ci/run installs it)."""

import io
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, ROOT
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


@pytest.fixture
def served(toy_runs, tmp_path):
    """`fader serve` on a free port: yields its URL; Ctrl-C (SIGINT) at the end must stop it cleanly."""
    env = dict(os.environ, FADER_HOME=str(tmp_path / "home"))
    process = subprocess.Popen(
        [sys.executable, "-m", "fadercli", "serve", "--model", str(toy_runs["smiling"]), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
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

"""`fader serve` against hostile pages and clients: cross-site requests, odd tokens, floods, bombs,
a malformed corpus, and a shutdown in the middle of a download."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import corpus
import numpy as np
import pytest
import torch
from conftest import DATA, ROOT
from fastapi.testclient import TestClient
from PIL import Image

from fadercli.media.images import decode_image
from fadercli.serve.app import Settings, create_app
from fadercli.serve.models import ModelPool
from fadercli.serve.renders import RenderQueue

ASTRONAUT = DATA / "astronaut.png"
HOST = "http://127.0.0.1"
EVIL = "https://evil.example"


def _client(model, **settings) -> TestClient:
    pool = ModelPool([str(model)], device=torch.device("cpu"), threshold=None)
    settings.setdefault("allowed_hosts", ("127.0.0.1", "localhost"))
    return TestClient(create_app(pool, Settings(**settings)), base_url=HOST)


@pytest.fixture(scope="module")
def client(toy_runs):
    with _client(toy_runs["both"]) as c:
        yield c


def _upload(client, headers=None, data=None, name="astronaut.png"):
    return client.post(
        "/api/photos", files={"file": (name, data or ASTRONAUT.read_bytes(), "image/png")}, headers=headers or {}
    )


# ---------------------------------------------------------------- 2. other sites cannot drive the server


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL},
        {"Origin": "null"},  # a sandboxed frame or a file:// page
        {"Origin": "http://127.0.0.1:1234"},  # another local port is another site
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": EVIL, "Sec-Fetch-Site": "same-origin"},
    ],
)
def test_state_changing_requests_from_other_sites_are_refused(client, headers):
    for response in (
        _upload(client, headers),
        client.post("/api/models/anything/load", headers=headers),
        client.post(
            "/api/edit", files={"file": ("a.png", ASTRONAUT.read_bytes())}, data={"set": "Smiling=1"}, headers=headers
        ),
        client.delete("/api/photos/whatever", headers=headers),
        client.post("/api/photos/whatever/render", json={}, headers=headers),
    ):
        assert response.status_code == 403 and response.json()["code"] == "cross_site", response.text


def test_the_page_itself_scripts_and_reads_still_work(client):
    assert _upload(client, {"Origin": HOST, "Sec-Fetch-Site": "same-origin"}).status_code == 201  # the page
    assert _upload(client).status_code == 201  # curl, a script: no browser headers
    assert _upload(client, {"Sec-Fetch-Site": "none"}).status_code == 201  # typed into the address bar
    assert client.get("/api/health", headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}).status_code == 200


def test_the_cors_origin_may_call_and_nothing_else(toy_runs):
    with _client(toy_runs["both"], cors="https://app.example") as c:
        allowed = _upload(c, {"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"})
        assert allowed.status_code == 201 and allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert _upload(c, {"Origin": EVIL}).status_code == 403


def test_with_a_token_a_cross_site_request_is_refused_even_with_the_cookie(toy_runs):
    with _client(toy_runs["both"], token="s3cret-token", cookie="fader_token_8123") as c:
        login = c.get("/?token=s3cret-token", follow_redirects=False)
        assert login.status_code == 303 and login.headers["set-cookie"].startswith("fader_token_8123=s3cret-token;")
        cookie = {"Cookie": "fader_token_8123=s3cret-token"}
        assert _upload(c, cookie).status_code == 201
        assert _upload(c, cookie | {"Origin": EVIL}).status_code == 403
        # Another local server's cookie (the old shared name) is not this server's.
        assert _upload(c, {"Cookie": "fader_token=s3cret-token"}).status_code == 401


# ---------------------------------------------------------------- 5. tokens are compared as bytes


@pytest.mark.parametrize("where", ["bearer", "cookie", "query"])
@pytest.mark.parametrize("given", ["é", "s3cret-tokén", "\u2603" * 20])
def test_non_ascii_tokens_are_refused_not_crashed(toy_runs, where, given):
    with _client(toy_runs["both"], token="s3cret-token", cookie="fader_token_1") as c:
        if where == "query":
            response = c.get("/", params={"token": given}, follow_redirects=False)
            assert response.status_code == 200 and "set-cookie" not in response.headers  # the page, no login
            return
        raw = given.encode("utf-8")  # the bytes a browser would send
        header = {"Authorization": b"Bearer " + raw} if where == "bearer" else {"Cookie": b"fader_token_1=" + raw}
        response = c.get("/api/health", headers=header)
        assert response.status_code == 401 and response.json()["code"] == "unauthorized"


def test_a_non_ascii_token_works_when_it_is_the_token(toy_runs):
    with _client(toy_runs["both"], token="clé-secrète-1") as c:
        raw = "clé-secrète-1".encode()
        assert c.get("/api/health", headers={"Authorization": b"Bearer " + raw}).status_code == 200


# ---------------------------------------------------------------- 3, 6. bounded work, one line for bad input


def test_the_work_queue_is_bounded_and_answers_busy():
    from fadercli.serve.work import Busy, WorkPool

    pool = WorkPool(workers=1, waiting=1)
    release = threading.Event()

    async def scenario():
        first = asyncio.ensure_future(pool.run(release.wait, 10))
        second = asyncio.ensure_future(pool.run(lambda: "second"))
        await asyncio.sleep(0.05)
        with pytest.raises(Busy, match="busy"):
            await pool.run(lambda: "third")
        release.set()
        assert await first is True and await second == "second"
        assert await pool.run(lambda: "again") == "again"  # room once the queue drains

    asyncio.run(scenario())
    pool.shutdown()


def test_busy_is_503_with_retry_after(toy_runs):
    with _client(toy_runs["both"], workers=1, queue=0) as c:
        record = _upload(c).json()
        gate = threading.Event()
        pool_fader = c.app.state.pool.fader
        real = pool_fader.analyse
        pool_fader.analyse = lambda *a, **k: (gate.wait(10), real(*a, **k))[1]
        try:
            with ThreadPoolExecutor(2) as clients:
                slow = clients.submit(_upload, c)
                time.sleep(0.3)
                busy = clients.submit(_upload, c).result()
                gate.set()
                assert slow.result().status_code == 201
        finally:
            pool_fader.analyse = real
        assert busy.status_code == 503 and busy.json()["code"] == "busy" and busy.headers["retry-after"] == "2"
        assert c.get(f"/api/photos/{record['id']}").status_code == 200


# ---------------------------------------------------------------- 3b. interactive work first


def test_interactive_work_goes_first_and_each_kind_has_its_own_bound():
    from fadercli.serve.work import INTERACTIVE, Busy, WorkPool

    pool = WorkPool(workers=1, waiting=2)
    holding, release, order = threading.Event(), threading.Event(), []

    def hold():  # bulk work with no checkpoint: the only worker is taken until it ends
        holding.set()
        return release.wait(30)

    def job(name):
        order.append(name)
        return name

    async def scenario():
        first = asyncio.ensure_future(pool.run(hold))
        while not holding.is_set():
            await asyncio.sleep(0.01)
        bulk = [asyncio.ensure_future(pool.run(job, f"bulk {i}")) for i in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(Busy, match="busy"):
            await pool.run(job, "bulk 2")  # three bulk jobs running or waiting: the bound
        slider = asyncio.ensure_future(pool.run(job, "slider", kind=INTERACTIVE))  # not turned away by them
        await asyncio.sleep(0)
        release.set()
        assert await asyncio.gather(first, *bulk, slider) == [True, "bulk 0", "bulk 1", "slider"]

    asyncio.run(scenario())
    pool.shutdown()
    assert order == ["slider", "bulk 0", "bulk 1"]  # queued last, run first


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own niceness is Linux's")
def test_with_two_workers_one_is_kept_for_interactive_work_and_the_other_runs_in_the_background():
    from fadercli.serve.work import WorkPool

    base = os.getpriority(os.PRIO_PROCESS, 0)
    pool = WorkPool(workers=2, waiting=1)
    lane, other = pool._threads
    _until(lambda: lane.native_id and other.native_id, "the workers start")
    _until(lambda: os.getpriority(os.PRIO_PROCESS, other.native_id) == min(19, base + 10), "bulk in the background")
    assert os.getpriority(os.PRIO_PROCESS, lane.native_id) == base
    pool.shutdown()


def _until(condition, what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_slider_render_goes_before_the_uploads_queued_ahead_of_it(toy_runs, workers):
    """Uploads whose analysis is slow (held here stage after stage): a render asked for after them is
    answered while every one of them still waits. One worker: it runs the render at the running
    upload's next checkpoint; two: bulk work leaves one of them free for it."""
    from fadercli.progress import checkpoint

    with _client(toy_runs["both"], workers=workers) as c:
        photo = _upload(c).json()["id"]
        fader, work = c.app.state.pool.fader, c.app.state.work
        real, release, done = fader.analyse, threading.Event(), []

        def slow(*args, **kwargs):
            while not release.is_set():
                checkpoint()  # a stage of the analysis ends
                release.wait(0.01)
            done.append("upload")
            return real(*args, **kwargs)

        fader.analyse = slow
        try:
            with ThreadPoolExecutor(4) as clients:
                uploads = [clients.submit(_upload, c) for _ in range(3)]
                _until(lambda: work.pending == 3, "the uploads reach the queue")
                body = {"faces": {"0": {"Smiling": 1.0}}, "format": "jpeg", "max_size": 256, "supersede": True}
                render = clients.submit(c.post, f"/api/photos/{photo}/render", json=body).result(timeout=60)
                assert render.status_code == 200 and done == []  # answered before any upload is
                release.set()
                assert [u.result().status_code for u in uploads] == [201] * 3 and done == ["upload"] * 3
        finally:
            release.set()
            fader.analyse = real


def test_a_render_superseded_while_it_waits_for_a_thread_is_dropped_before_it_starts(toy_runs):
    with _client(toy_runs["both"], workers=1) as c:
        photo = _upload(c).json()["id"]
        fader, work = c.app.state.pool.fader, c.app.state.work
        analysis = c.app.state.cache.get(photo).analysis
        real, render, held, release, rendered = fader.analyse, analysis.render, threading.Event(), threading.Event(), []

        def hold(*args, **kwargs):  # an upload holding the only worker, with no checkpoint
            held.set()
            release.wait(60)
            return real(*args, **kwargs)

        def counted(*args, **kwargs):
            rendered.append(kwargs["faces"])
            return render(*args, **kwargs)

        fader.analyse, analysis.render = hold, counted

        def slide(value):
            body = {"faces": {"0": {"Smiling": value}}, "format": "jpeg", "max_size": 256, "supersede": True}
            return c.post(f"/api/photos/{photo}/render", json=body)

        try:
            with ThreadPoolExecutor(3) as clients:
                upload = clients.submit(_upload, c)
                assert held.wait(60)
                older = clients.submit(slide, 0.5)
                _until(lambda: work.pending == 2, "the render waits for a thread")
                newer = clients.submit(slide, 1.5)
                _until(lambda: c.app.state.renders._slots[photo].latest == 2, "the newer render is asked for")
                release.set()
                assert older.result().status_code == 409 and older.result().json()["code"] == "superseded"
                assert newer.result().status_code == 200 and upload.result().status_code == 201
        finally:
            release.set()
            fader.analyse = real
        assert rendered == [{0: {"Smiling": 1.5}}]  # the older one never rendered


def test_faces_per_photo_are_capped_on_the_server(toy_runs, tmp_path):
    face = np.asarray(Image.open(ASTRONAUT).convert("RGB").crop((150, 40, 300, 250)).resize((120, 168)))
    crowd = np.concatenate([np.concatenate([face] * 3, axis=1)] * 3, axis=0)
    path = tmp_path / "crowd.png"
    Image.fromarray(crowd).save(path)
    from fadercli.limits import Limits

    pool = ModelPool([str(toy_runs["both"])], device=torch.device("cpu"), threshold=None, limits=Limits(max_faces=4))
    with TestClient(create_app(pool, Settings(allowed_hosts=("127.0.0.1",))), base_url=HOST) as c:
        record = _upload(c, data=path.read_bytes(), name="crowd.png").json()
        assert [f["face"] for f in record["faces"]] == [0, 1, 2, 3]


@pytest.mark.parametrize("face", ["²", "٣", "-1", "1e3", "9999999999"])
def test_odd_face_values_in_api_edit_are_one_line(client, face):
    response = client.post(
        "/api/edit", files={"file": ("a.png", ASTRONAUT.read_bytes())}, data={"set": "Smiling=1", "face": face}
    )
    assert 400 <= response.status_code < 500 and "\n" not in response.json()["error"]


def test_a_32_bit_upload_is_named_by_its_upload_name(client):
    image = Image.fromarray(np.full((64, 64), 100_000, np.int32), "I")
    buffer = __import__("io").BytesIO()
    image.save(buffer, format="TIFF")
    response = _upload(client, data=buffer.getvalue(), name="deep.tif")
    assert response.status_code == 422
    assert response.json()["error"] == "deep.tif: 32-bit integer images are not supported"


def test_the_corpus_through_the_api_is_only_refusals(client, tmp_path):
    for path in corpus.photo_corpus(tmp_path / "corpus"):
        for response in (
            _upload(client, data=path.read_bytes() or b"\0", name=path.name),
            client.post(
                "/api/edit", files={"file": (path.name, path.read_bytes() or b"\0")}, data={"set": "Smiling=1"}
            ),
        ):
            if response.status_code in (200, 201):  # a flipped byte that is still a fine image
                continue
            assert 400 <= response.status_code < 500, (path.name, response.status_code, response.text)
            assert "\n" not in response.json()["error"]
    assert client.get("/api/health").json()["status"] == "ok"


def test_phone_photos_are_uploaded_and_edited_back_in_their_format(client):
    for fmt, media in (("HEIF", "image/heic"), ("AVIF", "image/avif")):
        data = corpus.phone_photo(fmt, 512)
        uploaded = _upload(client, data=data, name=f"IMG_0421.{fmt.lower()}")
        assert uploaded.status_code == 201, uploaded.text
        assert (uploaded.json()["width"], len(uploaded.json()["faces"])) == (512, 1)
        edited = client.post("/api/edit", files={"file": ("IMG.x", data)}, data={"set": "Smiling=1"})
        assert edited.status_code == 200 and edited.headers["content-type"] == media, edited.text
        assert decode_image(edited.content, "edited").format == fmt
    for name, data in corpus.phone_corpus().items():
        response = _upload(client, data=data, name=name)
        assert response.status_code in (413, 422), (name, response.status_code, response.text)
        assert response.json()["error"].startswith(f"{name}: ")
    assert client.get("/api/health").json()["status"] == "ok"


# ---------------------------------------------------------------- 8. shared renders, shutdown


def test_a_client_that_goes_away_does_not_cancel_a_shared_render():
    async def scenario():
        queue, gone = RenderQueue(), {"first": True, "second": False}

        async def job(check):
            return "image"

        blocker = asyncio.Event()

        async def hold(check):
            await blocker.wait()
            return "held"

        holding = asyncio.ensure_future(queue.run("p", "other", hold, supersede=False, gone=lambda: _false()))
        await asyncio.sleep(0)
        first = asyncio.ensure_future(queue.run("p", "k", job, supersede=False, gone=lambda: _value(gone["first"])))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(queue.run("p", "k", job, supersede=False, gone=lambda: _value(gone["second"])))
        await asyncio.sleep(0)
        blocker.set()
        assert await holding == "held"
        assert await second == "image"  # the first client went away; the second still gets its render
        assert await first == "image"

    asyncio.run(scenario())


async def _false():
    return False


async def _value(v):
    return v


def _serve(args, env=None):
    process = subprocess.Popen(
        [sys.executable, "-m", "fadercli", "serve", "--port", "0", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    url = process.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), process.stderr.read()
    return process, url


def _request(url, data=None, headers=None, method=None, timeout=120):
    """(status, headers (case-insensitive), body) for a request; errors are answers too."""
    request = urllib.request.Request(url, data, headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def _multipart(name: str, data: bytes, fields: dict | None = None) -> tuple[bytes, dict]:
    boundary = "faderboundary7"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in (fields or {}).items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), {
        "Content-Type": f"multipart/form-data; boundary={boundary}"
    }


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) / 1024


def test_the_server_under_hostile_load_stays_healthy_and_bounded(toy_runs, tmp_path):
    """The corpus, cross-site requests, a real pixel bomb and 8 clients at once against one server."""
    token_file = tmp_path / "token"
    token_file.write_text("a-long-enough-token\n")
    process, url = _serve(
        ["--model", toy_runs["both"], "--workers", "1", "--queue", "2", "--cache-mb", "64", "--token-file", token_file]
    )
    auth = {"Authorization": "Bearer a-long-enough-token"}
    statuses: list[int] = []
    try:
        assert url.endswith("?token=a-long-enough-token")
        # The pixel bomb and the corpus: refusals only.
        for name, data in [
            ("bomb.png", corpus.png_bomb()),
            *((p.name, p.read_bytes()) for p in corpus.photo_corpus(tmp_path / "corpus")),
        ]:
            body, headers = _multipart(name, data or b"\0")
            status, _, answer = _request(url.split("?")[0] + "api/photos", body, headers | auth)
            statuses.append(status)
            assert status == 201 or 400 <= status < 500, (name, status, answer)
        # Cross-site, with and without the token.
        body, headers = _multipart("a.png", ASTRONAUT.read_bytes())
        for extra in ({"Origin": EVIL}, {"Origin": EVIL, **auth}, {"Sec-Fetch-Site": "cross-site", **auth}):
            assert _request(url.split("?")[0] + "api/photos", body, headers | extra)[0] in (401, 403)

        # 8 clients at once, each uploading and rendering.
        def client(_):
            out = []
            for _ in range(3):
                status, head, answer = _request(url.split("?")[0] + "api/photos", body, headers | auth)
                out.append((status, head.get("Retry-After")))
                if status == 201:
                    photo = json.loads(answer)["id"]
                    render = json.dumps({"faces": {"0": {"Smiling": 1.0}}, "max_size": 128}).encode()
                    status, head, _ = _request(
                        f"{url.split('?')[0]}api/photos/{photo}/render",
                        render,
                        {"Content-Type": "application/json"} | auth,
                    )
                    out.append((status, head.get("Retry-After")))
            return out

        with ThreadPoolExecutor(8) as pool:
            answers = [a for answers in pool.map(client, range(8)) for a in answers]
        codes = {status for status, _ in answers}
        assert codes <= {200, 201, 404, 503}, answers  # 404: a photo evicted by the 64 MB cache
        assert 503 in codes and all(retry == "2" for status, retry in answers if status == 503), answers
        assert _request(url.split("?")[0] + "api/health", headers=auth)[0] == 200
        peak = _peak_rss_mb(process.pid)
        assert peak < 1200, peak
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=20)
        stderr = process.stderr.read()
    assert code == 0 and "Traceback" not in stderr, stderr


def test_shutdown_does_not_wait_for_a_stalled_download(tmp_path, server, toy_runs):
    """A model load stuck in a download (the server stops sending) must not hold Ctrl-C."""
    model = toy_runs["both"] / "model.safetensors"
    server.plan.files["/m/model.safetensors"] = model.read_bytes()
    server.plan.stall_after = 100
    home = tmp_path / "home"
    home.mkdir()
    (home / "registry.toml").write_text(
        f'[models.slow]\nurl = "{server.url("/m/model.safetensors")}"\nattribute = "Smiling"\n'
    )
    process, url = _serve([], env={"FADER_HOME": str(home), "FADER_DOWNLOAD_TIMEOUT": "300"})
    try:
        loading = threading.Thread(
            target=_request, args=(url + "api/models/slow/load", b"", {}, "POST", 60), daemon=True
        )
        loading.start()
        assert server.plan.stalled.wait(30)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=15)
        assert time.monotonic() - started < 8
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0 and "Traceback" not in process.stderr.read()


def test_the_token_comes_from_the_environment_or_a_file_and_warns_on_the_command_line(toy_runs, tmp_path):
    process, url = _serve(["--model", toy_runs["both"]], env={"FADER_TOKEN": "from-the-environment"})
    try:
        assert url.endswith("?token=from-the-environment")
        assert _request(url.split("?")[0] + "api/health")[0] == 401
        assert (
            _request(url.split("?")[0] + "api/health", headers={"Authorization": "Bearer from-the-environment"})[0]
            == 200
        )
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    process, url = _serve(["--model", toy_runs["both"], "--token", "on-the-command-line"])
    process.send_signal(signal.SIGINT)
    _stopped(process)
    assert "--token shows on the command line to every user of this machine" in process.stderr.read()


def _stopped(process, timeout: float = 20) -> None:
    """Wait for a signalled server to end; if it does not, fail with what its threads were doing."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)  # faulthandler: every thread's stack on stderr
        time.sleep(1)
        process.kill()
        inherited = f"this process: SIGINT {signal.getsignal(signal.SIGINT)}, blocked {signal.pthread_sigmask(signal.SIG_BLOCK, [])}"
        raise AssertionError(f"the server did not stop ({inherited}):\n{process.stderr.read()[-6000:]}") from None


def test_the_login_cookie_is_named_after_the_port(toy_runs):
    process, url = _serve(["--model", toy_runs["both"]], env={"FADER_TOKEN": "cookie-per-port"})
    try:
        port = url.split(":")[2].split("/")[0]
        request = urllib.request.Request(url)
        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(request, timeout=30)
        except urllib.error.HTTPError as e:
            assert e.code == 303 and e.headers["Set-Cookie"].startswith(f"fader_token_{port}=cookie-per-port;")
        else:
            raise AssertionError("no redirect")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.mark.parametrize("value", [1e308, -1e39, 101])
def test_values_beyond_the_sliders_are_refused_not_overflowed(client, value):
    photo = _upload(client).json()["id"]
    response = client.post(f"/api/photos/{photo}/render", json={"faces": {"0": {"Smiling": value}}})
    assert response.status_code == 422 and "is not a number from -100 to 100" in response.json()["error"]
    sweep = client.post(f"/api/photos/{photo}/sweep", json={"attribute": "Smiling", "range": [0, value]})
    assert sweep.status_code == 422 and sweep.json()["code"] == "bad_value"


@pytest.mark.parametrize("inherited", ["ignored", "blocked"])
def test_ctrl_c_stops_a_server_whose_parent_left_it_ignored_or_blocked(toy_runs, inherited):
    def parent_state():  # as `cmd &` in a script leaves SIGINT ignored, or a thread's mask blocks it
        if inherited == "ignored":
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        else:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

    process = subprocess.Popen(
        [sys.executable, "-m", "fadercli", "serve", "--port", "0", "--model", str(toy_runs["both"])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=parent_state,
    )
    assert process.stdout.readline().startswith("http://127.0.0.1:")
    process.send_signal(signal.SIGINT)  # before uvicorn has its own handlers
    _stopped(process)
    assert process.returncode in (0, 130)

"""`fader serve`'s HTTP API, through the framework's test client, on tiny models trained on toy faces."""

import asyncio
import io
import json
import struct
import zlib

import numpy as np
import pytest
import torch
from conftest import DATA, paste_weights
from fastapi.testclient import TestClient
from PIL import Image

from fadercli.faces import alignment_for, find_faces
from fadercli.media.images import read_image
from fadercli.serve.app import Settings, create_app
from fadercli.serve.models import ModelPool
from fadercli.serve.renders import RenderQueue, Superseded

ASTRONAUT = DATA / "astronaut.png"
COFFEE = DATA / "coffee.png"
HOST = "http://127.0.0.1"


def _client(model, **settings) -> TestClient:
    pool = ModelPool([str(model)], device=torch.device("cpu"), threshold=None)
    settings.setdefault("allowed_hosts", ("127.0.0.1", "localhost"))
    return TestClient(create_app(pool, Settings(**settings)), base_url=HOST)


@pytest.fixture(scope="module")
def client(toy_runs):
    with _client(toy_runs["both"]) as c:
        yield c


@pytest.fixture(scope="module")
def portrait(client):
    """The test portrait uploaded once: its record."""
    response = client.post("/api/photos", files={"file": ("astronaut.png", ASTRONAUT.read_bytes(), "image/png")})
    assert response.status_code == 201, response.text
    return response.json()


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def _bomb() -> bytes:
    """A PNG header claiming 30000 x 30000 pixels with almost no data behind it."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


# ---------------------------------------------------------------- every endpoint


def test_health_models_and_the_page(client):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["version"] and health["device"].startswith("cpu")
    models = client.get("/api/models").json()
    [model] = models["models"]
    assert model["loaded"] and model["size"] == 32
    assert [a["name"] for a in models["attributes"]] == ["Eyeglasses", "Smiling"]
    assert all(a["range"] == [-1.0, 2.0] for a in models["attributes"])  # fader train's recommended range
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    # Self-contained: nothing fetched from elsewhere, and only its own inline script may run.
    assert not any(marker in page.text for marker in ('src="http', 'href="http', "url(http", "@import"))
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "connect-src 'self'" in csp
    assert client.get("/openapi.json").json()["paths"]["/api/photos/{photo_id}/render"]


def test_upload_describes_the_faces_and_a_render_at_their_own_values_is_the_photo(client, portrait):
    assert (portrait["width"], portrait["height"]) == (512, 512)
    [face] = portrait["faces"]
    assert face["face"] == 0 and len(face["box"]) == 4 and set(face["estimated"]) == {"Eyeglasses", "Smiling"}
    original = read_image(ASTRONAUT).pixels
    for faces in ({"0": face["estimated"]}, {}, {"0": {}}):
        response = client.post(f"/api/photos/{portrait['id']}/render", json={"faces": faces, "format": "png"})
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert np.array_equal(_pixels(response.content), original), faces  # bit for bit
    assert client.get(f"/api/photos/{portrait['id']}").json()["faces"] == portrait["faces"]


def test_a_render_is_fader_edit_bit_for_bit_and_changes_only_the_face(client, portrait, run_cli, toy_runs, tmp_path):
    out = tmp_path / "cli.png"
    result = run_cli(
        "edit", ASTRONAUT, "--model", toy_runs["both"], "--set", "Smiling=1.7", "--set", "Eyeglasses=-0.5", "-o", out
    )
    assert result.exit_code == 0, result.stderr
    body = {"faces": {"0": {"Smiling": 1.7, "Eyeglasses": -0.5}}, "format": "png", "max_size": None}
    rendered = client.post(f"/api/photos/{portrait['id']}/render", json=body)
    assert rendered.status_code == 200
    assert rendered.content == out.read_bytes()
    faces = json.loads(rendered.headers["x-fader-faces"])
    assert faces[0]["values"] == {"Smiling": 1.7, "Eyeglasses": -0.5}
    assert "render;dur=" in rendered.headers["server-timing"] and float(rendered.headers["x-render-seconds"]) > 0
    photo = read_image(ASTRONAUT)
    weights = paste_weights(alignment_for(find_faces(photo)[0], 32), photo)
    edited = _pixels(rendered.content)
    assert np.array_equal(edited[weights == 0], photo.pixels[weights == 0])
    assert (edited != photo.pixels)[weights > 0].any()
    # The stateless endpoint is the same edit again.
    edit = client.post(
        "/api/edit",
        files={"file": ("astronaut.png", ASTRONAUT.read_bytes(), "image/png")},
        data={"set": ["Smiling=1.7", "eyeglasses=-0.5"]},
    )
    assert edit.status_code == 200 and edit.headers["content-type"] == "image/png"
    assert edit.content == out.read_bytes()


def test_api_edit_shift_face_and_format_match_fader_edit(client, run_cli, toy_runs, tmp_path):
    out = tmp_path / "cli.jpg"
    result = run_cli(
        "edit",
        ASTRONAUT,
        "--model",
        toy_runs["both"],
        "--shift",
        "Smiling=0.8",
        "--face",
        "0",
        "--format",
        "jpg",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.stderr
    edit = client.post(
        "/api/edit",
        files={"file": ("a.png", ASTRONAUT.read_bytes(), "image/png")},
        data={"shift": "Smiling=0.8", "face": "0", "format": "jpg"},
    )
    assert edit.status_code == 200 and edit.headers["content-type"] == "image/jpeg"
    assert edit.content == out.read_bytes()


def test_previews_formats_and_sweeps(client, portrait):
    url = f"/api/photos/{portrait['id']}"
    for fmt, media in (("jpeg", "image/jpeg"), ("webp", "image/webp"), ("png", "image/png")):
        response = client.post(f"{url}/render", json={"faces": {"0": {"Smiling": 2}}, "format": fmt, "max_size": 200})
        assert response.status_code == 200 and response.headers["content-type"] == media
        with Image.open(io.BytesIO(response.content)) as im:
            assert im.size == (200, 200)
    gif = client.post(f"{url}/sweep", json={"attribute": "smiling", "steps": 4, "max_size": 64})
    assert gif.status_code == 200 and gif.headers["content-type"] == "image/gif"
    with Image.open(io.BytesIO(gif.content)) as im:
        assert im.n_frames == 4 and im.size == (64 + 4, 64 + 16)  # grids.grid_size of one cell
    grid = client.post(
        f"{url}/sweep", json={"attribute": "Eyeglasses", "steps": 3, "format": "png", "max_size": 64, "range": [0, 1]}
    )
    with Image.open(io.BytesIO(grid.content)) as im:
        assert im.size == (4 * 66 + 2, 64 + 16)  # the original and 3 steps
    bad = client.post(f"{url}/sweep", json={"attribute": "Smiling", "steps": 1})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_request"


def test_delete(client):
    photo = client.post("/api/photos", files={"file": ("a.png", ASTRONAUT.read_bytes(), "image/png")}).json()
    assert client.delete(f"/api/photos/{photo['id']}").status_code == 204
    gone = client.post(f"/api/photos/{photo['id']}/render", json={})
    assert gone.status_code == 404 and gone.json()["code"] == "photo_not_found"
    assert client.delete(f"/api/photos/{photo['id']}").status_code == 404


# ---------------------------------------------------------------- bad requests: a status, one line, and the server goes on

PNG = ASTRONAUT.read_bytes()


@pytest.mark.parametrize(
    "case, files, data, status, code, words",
    [
        ("empty", {"file": ("e.png", b"", "image/png")}, {"set": "Smiling=1"}, 400, "empty_upload", "empty"),
        (
            "text",
            {"file": ("t.png", b"just some text\n" * 20, "text/plain")},
            {"set": "Smiling=1"},
            415,
            "not_an_image",
            "not an image",
        ),
        (
            "truncated",
            {"file": ("c.png", PNG[: len(PNG) // 3], "image/png")},
            {"set": "Smiling=1"},
            422,
            "unreadable_image",
            "truncated",
        ),
        (
            "bomb",
            {"file": ("b.png", _bomb(), "image/png")},
            {"set": "Smiling=1"},
            413,
            "too_many_pixels",
            "decompression bomb",
        ),
        (
            "no face",
            {"file": ("coffee.png", COFFEE.read_bytes(), "image/png")},
            {"set": "Smiling=1"},
            422,
            "no_face",
            "no face found in coffee.png",
        ),
        (
            "unknown attribute",
            {"file": ("a.png", PNG, "image/png")},
            {"set": "Smilling=1"},
            422,
            "unknown_attribute",
            "Did you mean Smiling?",
        ),
        (
            "non-finite value",
            {"file": ("a.png", PNG, "image/png")},
            {"set": "Smiling=nan"},
            422,
            "bad_value",
            "not a finite number",
        ),
        (
            "face out of range",
            {"file": ("a.png", PNG, "image/png")},
            {"set": "Smiling=1", "face": "3"},
            422,
            "no_such_face",
            "no face 3",
        ),
        ("no file", None, {"set": "Smiling=1"}, 400, "missing_file", "field 'file'"),
        ("nothing to edit", {"file": ("a.png", PNG, "image/png")}, {}, 422, "bad_value", "nothing to edit"),
    ],
)
def test_bad_edits_answer_their_status_and_one_line(client, case, files, data, status, code, words):
    response = client.post("/api/edit", files=files, data=data)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and words in body["error"] and "\n" not in body["error"]
    assert "Traceback" not in response.text
    assert client.get("/api/health").json()["status"] == "ok"  # the server goes on


def test_bad_uploads_and_renders(client, portrait):
    for payload, status, code in (
        (b"", 400, "empty_upload"),
        (PNG[:300], 422, "unreadable_image"),
        (_bomb(), 413, "too_many_pixels"),
        (COFFEE.read_bytes(), 422, "no_face"),
    ):
        response = client.post("/api/photos", files={"file": ("x.gif", payload, "image/gif")})
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
    url = f"/api/photos/{portrait['id']}/render"
    for body, status, code in (
        ({"faces": {"0": {"Smilng": 1}}}, 422, "unknown_attribute"),
        ({"faces": {"1": {"Smiling": 1}}}, 422, "no_such_face"),
        ({"faces": {"first": {"Smiling": 1}}}, 422, "bad_face"),
        ({"faces": {"0": {"Smiling": "lots"}}}, 422, "invalid_request"),
        ({"format": "tiff"}, 422, "invalid_request"),
        ({"max_size": 4}, 422, "invalid_request"),
    ):
        response = client.post(url, json=body)
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
    infinite = client.post(
        url, content=b'{"faces": {"0": {"Smiling": Infinity}}}', headers={"Content-Type": "application/json"}
    )
    assert (infinite.status_code, infinite.json()["code"]) == (422, "bad_value")
    broken = client.post(url, content=b'{"faces": ', headers={"Content-Type": "application/json"})
    assert (broken.status_code, broken.json()["code"]) == (400, "bad_json")
    assert client.get("/api/nowhere").status_code == 404
    assert client.put("/api/health").json()["code"] == "method_not_allowed"
    assert client.post(url, json={"faces": {"0": {"Smiling": 1}}}).status_code == 200  # still working


def test_uploads_over_the_limit_are_refused(toy_runs):
    with _client(toy_runs["both"], max_upload_bytes=int(0.1 * 2**20)) as c:
        declared = c.post("/api/photos", files={"file": ("a.png", PNG, "image/png")})  # Content-Length says so
        assert declared.status_code == 413 and declared.json()["code"] == "too_large"
        assert "0.1 MB limit" in declared.json()["error"]

        def chunks():  # no Content-Length: counted as it arrives
            for start in range(0, len(PNG), 65536):
                yield PNG[start : start + 65536]

        streamed = c.post("/api/edit", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=x"})
        assert streamed.status_code == 413 and streamed.json()["code"] == "too_large"
        small = Image.open(ASTRONAUT).resize((256, 256))
        buffer = io.BytesIO()
        small.save(buffer, "JPEG")
        assert c.post("/api/photos", files={"file": ("s.jpg", buffer.getvalue(), "image/jpeg")}).status_code == 201


# ---------------------------------------------------------------- the cache


def test_the_cache_evicts_by_count_and_by_bytes(toy_runs):
    upload = {"file": ("a.png", PNG, "image/png")}
    with _client(toy_runs["smiling"], cache_photos=2) as c:
        ids = [c.post("/api/photos", files=upload).json()["id"] for _ in range(3)]
        first = c.post(f"/api/photos/{ids[0]}/render", json={})
        assert first.status_code == 404 and first.json()["code"] == "photo_not_found"
        assert "upload it again" in first.json()["error"]
        assert all(c.post(f"/api/photos/{i}/render", json={}).status_code == 200 for i in ids[1:])
        assert c.get("/api/health").json()["photos"] == 2
    with _client(toy_runs["smiling"], cache_bytes=1_000_000) as c:  # the photo alone is 786 kB
        ids = [c.post("/api/photos", files=upload).json()["id"] for _ in range(2)]
        assert c.post(f"/api/photos/{ids[0]}/render", json={}).status_code == 404
        assert c.post(f"/api/photos/{ids[1]}/render", json={}).status_code == 200


# ---------------------------------------------------------------- security


def test_a_token_guards_every_api_call(toy_runs):
    with _client(toy_runs["smiling"], token="s3cret-token") as c:
        for headers in ({}, {"Authorization": "Bearer wrong-token"}):
            refused = c.get("/api/health", headers=headers)
            assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
        assert c.post("/api/photos", files={"file": ("a.png", PNG, "image/png")}).status_code == 401
        assert c.get("/openapi.json").status_code == 401
        assert c.get("/api/health", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        assert c.get("/").status_code == 200  # the page, which asks for the token
        link = c.get("/?token=s3cret-token", follow_redirects=False)
        assert link.status_code == 303 and link.headers["location"] == "/"
        assert "fader_token=s3cret-token" in link.headers["set-cookie"] and "HttpOnly" in link.headers["set-cookie"]
        c.cookies.set("fader_token", "s3cret-token")
        assert c.get("/api/health").status_code == 200


def test_other_hosts_are_refused_and_no_cors_by_default(client):
    rebound = client.get("/api/health", headers={"Host": "evil.example"})
    assert rebound.status_code == 400 and rebound.json()["code"] == "bad_host"
    preflight = client.options(
        "/api/health", headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_serve_refuses_to_listen_beyond_loopback_without_a_token(run_cli):
    result = run_cli("serve", "--host", "0.0.0.0", "--model", "nothing.safetensors")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "fader: error: --host 0.0.0.0 lets other machines connect: require a token (FADER_TOKEN=..., --token-file F"
        " or --token auto)"
    ]


# ---------------------------------------------------------------- renders of one photo: one at a time, newest wins


def test_waiting_renders_are_shared_or_superseded():
    async def scenario():
        queue, started, gate = RenderQueue(), [], asyncio.Event()

        async def job(name):
            started.append(name)
            if name == "first":
                await gate.wait()
            return name

        async def present():
            return False

        def ask(name, key=None, supersede=True):
            return asyncio.create_task(
                queue.run("p", key or name, lambda check: job(name), supersede=supersede, gone=present)
            )

        first = ask("first")
        await asyncio.sleep(0)
        middle, same, newest = ask("middle"), ask("middle", supersede=False), ask("newest")
        download = ask("download", supersede=False)  # not superseding: never dropped
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(first, middle, same, newest, download, return_exceptions=True)
        return started, results

    started, (first, middle, same, newest, download) = asyncio.run(scenario())
    assert started == ["first", "newest", "download"]  # one at a time, the superseded one never ran
    assert isinstance(middle, Superseded) and isinstance(same, Superseded)  # an identical request shares its fate
    assert (first, newest, download) == ("first", "newest", "download")


# ---------------------------------------------------------------- without --model: the registry's models, on first use


def test_without_models_the_registry_is_offered_and_loaded_on_first_use(toy_runs, server, register):
    server.plan.files["/smiling.safetensors"] = (toy_runs["smiling"] / "model.safetensors").read_bytes()
    register(
        {
            "smiling": {"url": server.url("/smiling.safetensors"), "attribute": "Smiling", "slider_range": [-1, 2]},
            "broken": {"url": server.url("/missing.safetensors"), "attribute": "Young"},
        }
    )
    pool = ModelPool([], device=torch.device("cpu"), threshold=None)
    with TestClient(create_app(pool, Settings(allowed_hosts=("127.0.0.1",))), base_url=HOST) as c:
        offered = c.get("/api/models").json()
        assert offered["registry"] and offered["attributes"] == []
        names = {m["name"]: m for m in offered["models"]}
        assert {"smiling", "broken", "eyeglasses", "male"} <= set(names)  # the built-in ones too
        assert not names["smiling"]["loaded"] and not names["smiling"]["cached"]
        upload = {"file": ("a.png", PNG, "image/png")}
        early = c.post("/api/photos", files=upload)
        assert early.status_code == 422 and early.json()["code"] == "no_model"
        loaded = c.post("/api/models/smiling/load")
        assert loaded.status_code == 200 and server.plan.requests  # downloaded now
        assert [a["name"] for a in loaded.json()["attributes"]] == ["Smiling"]
        photo = c.post("/api/photos", files=upload)
        assert photo.status_code == 201 and set(photo.json()["faces"][0]["estimated"]) == {"Smiling"}
        failed = c.post("/api/models/broken/load")
        assert failed.status_code == 502 and failed.json()["code"] == "download_failed"
        unknown = c.post("/api/models/nothing/load")
        assert unknown.status_code == 404 and unknown.json()["code"] == "no_such_model"
        assert (
            c.post(f"/api/photos/{photo.json()['id']}/render", json={"faces": {"0": {"Smiling": 1}}}).status_code == 200
        )


def test_a_loaded_runs_card_and_curves(client, toy_runs):
    run = toy_runs["both"]
    [model] = client.get("/api/models").json()["models"]
    assert model["name"] == str(run) and model["card"] is True and model["curves"] is True
    card = client.get(f"/api/models/{run}/card")
    assert card.status_code == 200 and card.headers["content-type"].startswith("text/markdown")
    assert card.text == (run / "README.md").read_text()
    curves = client.get(f"/api/models/{run}/curves.png")
    assert curves.status_code == 200 and curves.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(curves.content)).size[0] > 600
    missing = client.get("/api/models/nothing-here/card")
    assert missing.status_code == 404 and missing.json()["code"] == "no_such_model"

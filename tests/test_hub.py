"""The registry, the cache and downloads, against a local HTTP server on 127.0.0.1."""

import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import YUNET

from fadercli.errors import DownloadError, ModelError, UsageError
from fadercli.weights import hub

ROOT = Path(__file__).resolve().parents[1]
DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
HALF = len(DATA) // 2


@pytest.fixture
def blob(home, server, register):
    """A registry entry `blob` for DATA, with its size and sha256 published."""
    server.plan.files["/files/blob.onnx"] = DATA
    register({"blob": {"url": server.url("/files/blob.onnx"), "format": "onnx", "sha256": SHA, "size": len(DATA)}})
    return home / "models" / "blob" / "blob.onnx"


@pytest.fixture
def cli_messages():
    """The library's messages on stderr, as every fader command shows them (set up by the first
    command a process runs: without this, these tests passed only after another test ran one)."""
    from fadercli import logger
    from fadercli.cli import _show_messages

    handlers, level = list(logger.handlers), logger.level
    _show_messages(verbose=False)
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


def leftovers(home: Path) -> list[str]:
    models = home / "models"
    return sorted(str(p.relative_to(models)) for p in models.rglob("*")) if models.exists() else []


def one_line(error: Exception) -> str:
    text = str(error)
    assert "\n" not in text
    return text


def test_a_good_download(blob, home, server):
    assert hub.fetch("blob", quiet=True) == blob
    assert blob.read_bytes() == DATA
    assert leftovers(home) == ["blob", "blob/blob.onnx"]  # no .part, no temp file
    assert (home / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    assert hub.fetch("BLOB") == blob  # names are case-insensitive; cached: no second transfer
    assert len(server.plan.requests) == 1


def test_404_fails_at_once_and_leaves_nothing(blob, home, server):
    server.plan.files.clear()
    with pytest.raises(DownloadError) as caught:
        hub.fetch("blob", quiet=True)
    message = one_line(caught.value)
    assert server.url("/files/blob.onnx") in message and "HTTP 404" in message
    assert f"save it as {blob}" in message and "FADER_OFFLINE=1" in message
    assert len(server.plan.requests) == 1  # a 404 is not retried
    assert leftovers(home) == []


def test_500_then_success(blob, server):
    server.plan.fail = [500, 503]
    assert hub.fetch("blob", quiet=True).read_bytes() == DATA
    assert len(server.plan.requests) == 3


def test_too_many_500s(blob, home, server):
    server.plan.fail = [500] * 3
    with pytest.raises(DownloadError, match=r"HTTP 500 Internal Server Error \(3 tries\)"):
        hub.fetch("blob", quiet=True)
    assert leftovers(home) == []


def _resumed_from(request) -> int:
    path, range_header = request
    assert path == "/files/blob.onnx" and range_header.startswith("bytes=") and range_header.endswith("-")
    return int(range_header[6:-1])


def test_a_body_cut_off_half_way_is_resumed_with_range(blob, server):
    server.plan.cut_after = HALF
    assert hub.fetch("blob", quiet=True).read_bytes() == DATA
    first, second = server.plan.requests  # one try, one resume: the kept bytes were right
    assert first == ("/files/blob.onnx", None)
    # The client keeps what it had written when the connection broke: all but its last read.
    offset = _resumed_from(second)
    assert HALF - (1 << 16) < offset <= HALF
    assert server.plan.sent == HALF + len(DATA) - offset


def test_a_server_that_ignores_range_is_handled(blob, server):
    server.plan.cut_after = HALF
    server.plan.ignore_range = True
    assert hub.fetch("blob", quiet=True).read_bytes() == DATA
    assert _resumed_from(server.plan.requests[1]) > 0 and len(server.plan.requests) == 2
    assert server.plan.sent == HALF + len(DATA)  # the 200 answer restarted the file


def test_wrong_sha256_leaves_nothing(blob, home, server):
    server.plan.files["/files/blob.onnx"] = DATA[:-1] + b"x"
    with pytest.raises(DownloadError) as caught:
        hub.fetch("blob", quiet=True)
    got = hashlib.sha256(DATA[:-1] + b"x").hexdigest()
    assert f"sha256 mismatch: got {got}, expected {SHA}" in one_line(caught.value)
    assert leftovers(home) == []


def test_a_stalled_server_times_out_with_a_clear_error(blob, server, monkeypatch):
    monkeypatch.setenv("FADER_DOWNLOAD_TIMEOUT", "0.3")
    monkeypatch.setenv("FADER_DOWNLOAD_RETRIES", "0")
    server.plan.stall_after = 1000
    start = time.monotonic()
    with pytest.raises(DownloadError) as caught:
        hub.fetch("blob", quiet=True)
    assert "the server stopped sending data (nothing for 0.3 s) (1 try)" in one_line(caught.value)
    assert time.monotonic() - start < 10
    assert not blob.exists()


@pytest.mark.parametrize("terminal, quiet, shown", [(True, False, True), (True, True, False), (False, False, False)])
def test_progress_and_retries_show_at_a_terminal_unless_quiet(
    terminal, quiet, shown, blob, server, capsys, monkeypatch, cli_messages
):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    server.plan.fail = [502]
    hub.fetch("blob", quiet=quiet)
    err = capsys.readouterr().err
    assert ("fader: blob: HTTP 502 Bad Gateway; retrying in 0.01 s" in err) is shown
    assert ("300.0/300.0 kB" in err) is shown  # the progress bar's last state


def test_not_enough_disk_space(blob, home, server, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=10**12, used=10**12, free=1000))
    with pytest.raises(DownloadError, match="not enough disk space .* 0.3 MB needed, 0.0 MB free"):
        hub.fetch("blob", quiet=True)
    assert leftovers(home) == []


def _cli(*args, env):
    return subprocess.Popen(
        [sys.executable, "-m", "fadercli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_line(stream, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        if select.select([stream], [], [], 0.1)[0]:
            line = stream.readline()
            seen += line
            if text in line:
                return seen
    raise AssertionError(f"no {text!r} within {timeout} s; saw {seen!r}")


def _wait_until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_two_processes_download_once(blob, server):
    server.plan.stall_after = HALF  # the first transfer waits half way until the second process waits too
    first = _cli("models", "download", "blob", env=os.environ)
    assert server.plan.stalled.wait(30)
    second = _cli("models", "download", "blob", env=os.environ)
    _wait_for_line(second.stderr, "waiting for another fader process to finish with blob")
    server.plan.release.set()
    for proc in (first, second):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip() == str(blob)
    assert blob.read_bytes() == DATA
    assert len(server.plan.requests) == 1


def test_a_download_killed_half_way_is_completed_by_the_next_run(blob, server):
    part = blob.with_name("blob.onnx.part")
    server.plan.stall_after = HALF
    proc = _cli("models", "download", "blob", env=os.environ)
    assert server.plan.stalled.wait(30)
    _wait_until(lambda: part.exists() and part.stat().st_size > 0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    kept = part.stat().st_size
    assert not blob.exists() and 0 < kept <= HALF
    server.plan.release.set()
    assert hub.fetch("blob", quiet=True).read_bytes() == DATA
    assert server.plan.requests[-1] == ("/files/blob.onnx", f"bytes={kept}-")
    assert not part.exists()


def test_offline_without_the_file_says_where_to_put_it(blob, home, server, monkeypatch):
    monkeypatch.setenv("FADER_OFFLINE", "1")
    with pytest.raises(DownloadError) as caught:
        hub.fetch("blob")
    message = one_line(caught.value)
    assert f"download {server.url('/files/blob.onnx')} and save it as {blob}" in message
    blob.parent.mkdir(parents=True)
    blob.write_bytes(DATA[:-1] + b"x")  # the wrong file, placed by hand, is refused, not replaced
    with pytest.raises(ModelError, match=f"is not the {SHA} published in the registry"):
        hub.fetch("blob")
    blob.write_bytes(DATA)
    assert hub.fetch("blob") == blob
    assert server.plan.requests == []


def test_offline_with_the_file_cached(blob, server, monkeypatch):
    hub.fetch("blob", quiet=True)
    monkeypatch.setenv("FADER_OFFLINE", "1")
    assert hub.fetch("blob").read_bytes() == DATA
    assert len(server.plan.requests) == 1


def test_without_a_published_sha256_the_first_one_is_recorded_and_enforced(
    home, server, register, capsys, cli_messages
):
    server.plan.files["/files/blob.onnx"] = DATA
    register({"blob": {"url": server.url("/files/blob.onnx"), "format": "onnx"}})
    path = hub.fetch("blob", quiet=True)
    record = home / "models" / "blob.sha256"
    assert record.read_text().strip() == SHA
    assert f"no sha256 is published for this file; recorded {SHA} in {record}" in capsys.readouterr().err
    path.write_bytes(os.urandom(1000))  # the cached file changed behind fader's back
    with pytest.raises(ModelError, match=f"is not the {SHA} recorded"):
        hub.fetch("blob", quiet=True)
    hub.remove("blob")
    assert not record.exists()  # rm clears the entry and its record: the next download is checked afresh
    other = os.urandom(1000)
    server.plan.files["/files/blob.onnx"] = other
    assert hub.fetch("blob", quiet=True).read_bytes() == other
    assert record.read_text().strip() == hashlib.sha256(other).hexdigest()


def test_no_internet_fails_with_one_line_naming_the_url(home, run_cli, monkeypatch):
    """`fader models download eyeglasses` on a machine whose network is unreachable (hermetic:
    every request goes to a proxy on a closed local port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(name, closed)
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FADER_DOWNLOAD_RETRIES", "1")
    result = run_cli("models", "download", "eyeglasses")
    assert result.exit_code == DownloadError.exit_code
    [line] = result.stderr.splitlines()
    assert line.startswith(
        "fader: error: cannot download eyeglasses from"
        " https://dl.fbaipublicfiles.com/FaderNetworks/eyeglasses.pth: cannot connect"
    )
    assert "Offline? Fetch the file elsewhere and save it as" in line and "FADER_OFFLINE=1" in line
    assert result.stdout == ""
    assert leftovers(home) == []


def test_registry_built_ins():
    entries = hub.registry()
    assert {n: e.slider_range for n, e in entries.items() if e.attribute} == {
        "eyeglasses": (-1.0, 2.0),
        "male": (-1.0, 2.0),
        "young": (-9.0, 10.0),
        "narrow_eyes": (-9.0, 10.0),
        "pointy_nose": (-9.0, 10.0),
    }
    assert entries["classifier256"].kind == "classifier"
    yunet = entries["yunet"]
    assert yunet.size == 229_738 and "47534e27c9851bb1128ccc0102f1145e27f23f98" in yunet.urls[0]
    assert hashlib.sha256(YUNET.read_bytes()).hexdigest() == yunet.sha256  # the tests' copy is the real file


def test_model_for_attribute(server, register):
    assert hub.model_for_attribute("NARROW_EYES") == "narrow_eyes"
    register(
        {
            "glasses-hq": {"url": server.url("/g.safetensors"), "attribute": "Eyeglasses"},
            "smile": {"url": server.url("/s.safetensors"), "attribute": "Smiling", "slider_range": [-1, 2]},
        }
    )
    assert hub.model_for_attribute("eyeglasses") == "glasses-hq"  # your own entries first
    assert hub.model_for_attribute("smiling") == "smile"
    with pytest.raises(UsageError) as caught:
        hub.model_for_attribute("Yuong")
    assert "Young (young)" in one_line(caught.value) and "Did you mean Young?" in str(caught.value)


@pytest.mark.parametrize(
    "text, expected",
    [
        ('[models.x]\nurl = "http://h/x.onnx"\nformat = "onnx"\nsha = "ab"\n', "model x: unknown setting 'sha'"),
        ('[models.x]\nurl = "ftp://h/x"\n', "model x: needs at least one http(s) URL"),
        ('[models.x]\nurl = "http://h/x"\nformat = "pickle"\n', "unknown format 'pickle'"),
        ('[models.x]\nurl = "http://h/x"\nsha256 = "abc"\n', "sha256 must be 64"),
        ('[models.x]\nurl = "http://h/x"\nslider_range = [2, 1]\n', "slider_range must be"),
        ('[models."Bad Name"]\nurl = "http://h/x"\n', "invalid name 'Bad Name'"),
        ("models = 3\n", "expected [models.NAME] tables"),
        ("[models.x\n", "registry file"),
    ],
)
def test_bad_registry_files_give_one_line(text, expected, home, run_cli):
    (home / "registry.toml").parent.mkdir(parents=True)
    (home / "registry.toml").write_text(text)
    result = run_cli("models", "list")
    assert result.exit_code == UsageError.exit_code
    assert len(result.stderr.splitlines()) == 1 and expected in result.stderr


def test_json_registry_named_by_the_environment(home, server, tmp_path, monkeypatch, run_cli):
    server.plan.files["/files/blob.onnx"] = DATA
    team = tmp_path / "team.json"
    team.write_text(
        json.dumps(
            {
                "models": {
                    "blob": {
                        "urls": [
                            "http://127.0.0.1:9/nowhere.onnx",
                            server.url("/files/blob.onnx"),
                        ],  # a dead mirror first
                        "format": "onnx",
                        "sha256": SHA,
                        "licence": "CC-BY 4.0",
                        "description": "team blob",
                    }
                }
            }
        )
    )
    monkeypatch.setenv("FADER_REGISTRY", str(team))
    monkeypatch.setenv("FADER_DOWNLOAD_RETRIES", "0")
    assert hub.fetch("blob", quiet=True).read_bytes() == DATA
    rows = {r["name"]: r for r in json.loads(run_cli("models", "list", "--json").stdout)}
    assert rows["blob"]["cached"] and rows["blob"]["size"] == len(DATA) and rows["blob"]["origin"] == str(team)
    assert rows["blob"]["licence"] == "CC-BY 4.0" and not rows["eyeglasses"]["cached"]
    monkeypatch.setenv("FADER_REGISTRY", str(tmp_path / "missing.json"))
    with pytest.raises(UsageError, match="FADER_REGISTRY names .*missing.json, which is not a file"):
        hub.registry()


def test_bad_download_settings_are_usage_errors(blob, monkeypatch):
    monkeypatch.setenv("FADER_DOWNLOAD_TIMEOUT", "soon")
    with pytest.raises(UsageError, match="FADER_DOWNLOAD_TIMEOUT must be a number"):
        hub.fetch("blob")


def test_models_cli_path_rm_and_list(blob, home, run_cli):
    result = run_cli("models", "path", "blob")
    assert result.exit_code == ModelError.exit_code and "`fader models download blob`" in result.stderr
    result = run_cli("models", "download", "blob", "--quiet")
    assert result.exit_code == 0 and result.stdout == f"{blob}\n"
    assert run_cli("models", "path", "blob").stdout == f"{blob}\n"
    table = run_cli("models", "list").stdout
    assert any(line.split()[:4] == ["blob", "-", "300.0", "kB"] and "yes" in line for line in table.splitlines())
    result = run_cli("models", "rm", "blob")
    assert result.exit_code == 0 and not blob.parent.exists()
    assert run_cli("models", "rm", "blob").exit_code == ModelError.exit_code
    assert run_cli("models", "download").exit_code == UsageError.exit_code
    result = run_cli("models", "path", "nosuch")
    assert result.exit_code == ModelError.exit_code and "no model file or model named 'nosuch'" in result.stderr


def test_a_face_detector_that_cannot_be_had_stops_a_folder_at_once(
    home, server, register, toy_runs, tmp_path, run_cli, monkeypatch
):
    """No face detector given, none cached and its server down: the first photo's try says so in one
    line, exit 6, and the other photos do not try again (each try is retried with back-off)."""
    monkeypatch.delenv("FADER_DETECTOR_MODEL")  # not the repository's copy: the registry's, to download
    register({"yunet": {"url": server.url("/files/yunet.onnx")}})
    server.plan.fail = [503] * 100
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        shutil.copy(ROOT / "tests" / "data" / "coffee.png", folder / f"photo{i}.png")
    result = run_cli("edit", folder, "--set", "Smiling=1", "-m", toy_runs["both"], "--out-dir", tmp_path / "out", "-q")
    assert result.exit_code == DownloadError.exit_code
    [line] = result.stderr.splitlines()
    assert line.startswith("fader: error: cannot download yunet from") and "HTTP 503" in line
    assert len(server.plan.requests) == int(os.environ["FADER_DOWNLOAD_RETRIES"]) + 1  # one download's tries
    assert result.stdout == "" and not list((tmp_path / "out").iterdir())

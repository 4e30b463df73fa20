"""`--model` resolution: files, run folders, names, URLs; the authors' models end to end; imports."""

import hashlib
import json
import logging
import os

import pytest
import torch
from release_files import release_bytes, save_release_file
from release_layout import randomise

from fadercli.errors import DownloadError, ModelError, OutputError, UsageError
from fadercli.net.model import AutoEncoder, FaderConfig
from fadercli.weights import hub
from fadercli.weights.format import save_model

SMALL = dict(img_sz=32, init_fm=8, max_fm=32, n_layers=3)


def _same_outputs(loaded, original):
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, 2)
    with torch.no_grad():
        return (loaded.model(x, y) - original(x, y)).abs().max() <= 1e-6


def test_an_authors_model_is_downloaded_converted_once_and_loaded(release, home, server, register, caplog, run_cli):
    original = randomise(release.AutoEncoder(**SMALL), seed=4)
    data = release_bytes(original)
    server.plan.files["/FaderNetworks/eyeglasses.pth"] = data
    url = server.url("/FaderNetworks/eyeglasses.pth")
    # A mirror for the built-in entry: everything else (format, attribute, range, licence) is kept.
    register({"eyeglasses": {"url": url}})

    with caplog.at_level(logging.INFO, logger="fadercli"):  # the library logs; the command shows it
        loaded = hub.resolve_model("eyeglasses", quiet=True)
    folder = home / "models" / "eyeglasses"
    assert sorted(os.listdir(folder)) == ["model.safetensors"]  # the .pth is gone once converted
    assert loaded.path == folder / "model.safetensors"
    assert loaded.slider_ranges == {"Eyeglasses": (-1.0, 2.0)}
    assert loaded.training["source"] == url and loaded.training["licence"] == "CC-BY-NC 4.0"
    assert loaded.training["source_sha256"] == hashlib.sha256(data).hexdigest()
    assert _same_outputs(loaded, original)
    warned = {r.getMessage() for r in caplog.records if r.name == "fadercli" and r.levelno == logging.WARNING}
    assert any(
        "eyeglasses: the authors' pretrained Fader Networks weights are licensed CC-BY-NC 4.0" in m for m in warned
    )
    assert any("no sha256 is published for this file; recorded" in m for m in warned)

    assert _same_outputs(hub.resolve_model("eyeglasses"), original)  # from the cache
    assert len(server.plan.requests) == 1
    record = json.loads(run_cli("info", "eyeglasses", "--json").stdout)
    assert record["attributes"][0]["slider_range"] == [-1.0, 2.0]


def test_a_file_that_edits_another_attribute_than_the_registry_says_is_refused(release, server, register):
    server.plan.files["/young.pth"] = release_bytes(randomise(release.AutoEncoder(**SMALL)))
    register({"young": {"url": server.url("/young.pth")}})
    with pytest.raises(ModelError, match="this model edits Eyeglasses, not Young as the registry says"):
        hub.resolve_model("young", quiet=True)


@pytest.fixture
def ours(tmp_path):
    ae = randomise(AutoEncoder(FaderConfig(img_size=32, init_fm=8, max_fm=32, n_layers=3)), seed=5)
    run = tmp_path / "run"
    run.mkdir()
    save_model(run / "model.safetensors", ae, slider_ranges={"Eyeglasses": (-0.5, 1.5)})
    return ae, run / "model.safetensors"


def test_local_files_and_run_folders(ours, release, tmp_path, home):
    ae, path = ours
    assert _same_outputs(hub.resolve_model(str(path)), ae)
    assert _same_outputs(hub.resolve_model(str(path.parent)), ae)  # a training run folder
    original = randomise(release.AutoEncoder(**SMALL), seed=6)
    pth = save_release_file(original, tmp_path / "theirs.pth")
    assert _same_outputs(hub.resolve_model(str(pth)), original)
    with pytest.raises(ModelError, match="a folder without model.safetensors"):
        hub.resolve_model(str(tmp_path / "run" / ".."))
    with pytest.raises(ModelError, match="no such model file"):
        hub.resolve_model(str(tmp_path / "nope.pth"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelError, match="not a model file fader reads"):
        hub.resolve_model(str(tmp_path / "notes.txt"))


def test_an_http_url(ours, home, server):
    ae, path = ours
    server.plan.files["/w/smiling.safetensors"] = path.read_bytes()
    url = server.url("/w/smiling.safetensors")
    loaded = hub.resolve_model(url, quiet=True)
    assert _same_outputs(loaded, ae) and loaded.slider_ranges == {"Eyeglasses": (-0.5, 1.5)}
    assert loaded.path.parent.name.startswith("url-")
    assert _same_outputs(hub.resolve_model(url), ae)
    assert len(server.plan.requests) == 1
    with pytest.raises(UsageError, match="cannot tell the file type from the URL"):
        hub.resolve_model(server.url("/w/smiling.bin"))


def test_names_that_cannot_give_a_fader_model(home, monkeypatch):
    monkeypatch.setenv("FADER_OFFLINE", "1")  # any download attempt would fail differently
    with pytest.raises(ModelError, match=r"yunet \(YuNet face detector .*\) is not a model fader can load"):
        hub.resolve_model("yunet")
    with pytest.raises(ModelError, match="classifier256: this is a classifier model, a fader model is needed"):
        hub.resolve_model("classifier256")
    with pytest.raises(DownloadError, match="classifier256 is not in the cache and FADER_OFFLINE=1"):
        hub.resolve_model("classifier256", kind="classifier")
    with pytest.raises(ModelError, match="no model file or model named 'eyeglases'.*Did you mean eyeglasses?"):
        hub.resolve_model("eyeglases")


def test_import_keeps_a_model_under_a_name(release, tmp_path, home, run_cli):
    original = randomise(release.AutoEncoder(**SMALL), seed=7)
    pth = save_release_file(original, tmp_path / "theirs.pth")
    result = run_cli("models", "import", pth, "--name", "Mine")
    assert result.exit_code == 0, result.stderr
    dest = home / "models" / "mine" / "model.safetensors"
    assert result.stdout == f"{dest}\n"
    loaded = hub.resolve_model("mine")
    assert _same_outputs(loaded, original) and loaded.path == dest
    assert loaded.training["imported_from"] == "theirs.pth"
    assert loaded.training["source_sha256"] == hashlib.sha256(pth.read_bytes()).hexdigest()
    rows = {r["name"]: r for r in json.loads(run_cli("models", "list", "--json").stdout)}
    assert rows["mine"]["cached"] and rows["mine"]["attribute"] == "Eyeglasses" and rows["mine"]["origin"] == "imported"
    assert run_cli("models", "import", pth, "--name", "mine").exit_code == OutputError.exit_code
    assert run_cli("models", "import", pth, "--name", "mine", "--force").exit_code == 0
    assert run_cli("models", "import", pth, "--name", "eyeglasses").exit_code == UsageError.exit_code
    assert run_cli("models", "import", pth, "--name", "no good").exit_code == UsageError.exit_code
    assert run_cli("models", "rm", "mine").exit_code == 0
    assert not dest.parent.exists()

import json
import os

import pytest
import torch
from release_layout import randomise
from safetensors.torch import save_file

from fadercli.errors import ModelError
from fadercli.net.model import AutoEncoder, Classifier, ClassifierConfig, FaderConfig
from fadercli.weights.format import load_model, save_model

SMALL = FaderConfig((("Smiling", 2), ("Hair", 3)), img_size=32, init_fm=8, max_fm=32, n_layers=3, n_skip=1)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(path, randomise(AutoEncoder(SMALL)), slider_ranges={"Smiling": (-1, 2)}, training={"steps": 12})
    return path


def test_round_trip_gives_bit_identical_outputs(model_file):
    original = randomise(AutoEncoder(SMALL))
    loaded = load_model(model_file)
    assert loaded.kind == "fader" and loaded.config == SMALL
    assert loaded.slider_ranges == {"Smiling": (-1.0, 2.0), "Hair": (0.0, 2.0)}
    assert loaded.training == {"steps": 12}
    assert loaded.attributes.names == ["Smiling", "Hair"]
    x, y = torch.rand(4, 3, 32, 32), torch.rand(4, 5)
    with torch.no_grad():
        assert torch.equal(loaded.model(x, y), original(x, y))
    assert not loaded.model.training


def test_save_leaves_no_temporary_files(model_file):
    assert sorted(os.listdir(model_file.parent)) == ["model.safetensors"]


def test_classifier_round_trip_and_kind_check(tmp_path):
    path = tmp_path / "clf.safetensors"
    clf = randomise(Classifier(ClassifierConfig((("Smiling", 2),), img_size=32, init_fm=8, max_fm=32, hid_dim=16)))
    save_model(path, clf)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_model(path, kind="classifier").model(x), clf(x))
    with pytest.raises(ModelError, match="classifier model, a fader model is needed"):
        load_model(path, kind="fader")


def _mismatched(model_file, tmp_path):
    """A file whose tensors are right for another config than the one its metadata states."""
    from safetensors import safe_open

    with safe_open(str(model_file), "pt") as f:
        metadata = f.metadata()
    metadata["config"] = json.dumps({**json.loads(metadata["config"]), "init_fm": 16})
    tensors = {k: v for k, v in AutoEncoder(SMALL).state_dict().items() if "num_batches" not in k}
    path = tmp_path / "mismatched.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    return path


def _overwrite(data):
    def make(model_file, tmp_path):
        model_file.write_bytes(data(model_file.read_bytes()))
        return model_file

    return make


def _foreign(model_file, tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    return path


BROKEN = {
    "truncated": (_overwrite(lambda b: b[: len(b) // 2]), "truncated or corrupt"),
    "random": (_overwrite(lambda b: os.urandom(5000)), "truncated or corrupt"),
    "empty": (_overwrite(lambda b: b""), "truncated or corrupt"),
    "mismatched": (_mismatched, "has shape"),
    "foreign": (_foreign, "not a fader model"),
    "missing": (lambda model_file, tmp_path: tmp_path / "nope.safetensors", "no such model file"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_files_give_one_line_and_an_exit_code(case, model_file, tmp_path, run_cli):
    make, expected = BROKEN[case]
    path = make(model_file, tmp_path)
    result = run_cli("info", path)
    assert result.exit_code == ModelError.exit_code
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fader: error: ")
    assert expected in lines[0]


def test_nan_weights_are_refused(tmp_path):
    ae = AutoEncoder(SMALL)
    with torch.no_grad():
        ae.dec_layers[0][0].weight[0, 0, 0, 0] = float("nan")
    save_model(tmp_path / "nan.safetensors", ae)
    with pytest.raises(ModelError, match="NaN"):
        load_model(tmp_path / "nan.safetensors")


def test_info_shows_the_model(model_file, run_cli):
    result = run_cli("info", model_file, "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert [a["name"] for a in record["attributes"]] == ["Smiling", "Hair"]
    assert record["attributes"][0]["slider_range"] == [-1.0, 2.0]
    assert record["img_size"] == 32
    assert record["parameters"] == sum(p.numel() for p in AutoEncoder(SMALL).parameters())
    assert record["training"] == {"steps": 12}
    table = run_cli("info", model_file)
    assert table.exit_code == 0
    assert "Smiling" in table.stdout and "32 px" in table.stdout and f"{record['parameters']:,}" in table.stdout


def test_debug_variable_shows_the_traceback(tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("FADER_DEBUG", "1")
    result = run_cli("info", tmp_path / "nope.safetensors")
    assert isinstance(result.exception, ModelError)

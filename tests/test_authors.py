"""Reading the authors' .pth files: same outputs as their module, and no code from the file runs."""

import json
import os
import pickle

import pytest
import torch
from release_files import pickled_names, save_release_file
from release_layout import randomise

from fadercli.errors import ModelError
from fadercli.net.model import ClassifierConfig, FaderConfig
from fadercli.weights.authors import load_pth

CELEBA_40 = [
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
]

# (release AutoEncoder arguments, modern module state, the FaderConfig the file must give)
CASES = {
    "release default, 256 px": ({}, False, FaderConfig()),
    "64 px, two attributes, upsampling, a skip": (
        dict(
            img_sz=64,
            init_fm=16,
            max_fm=128,
            n_layers=4,
            n_skip=1,
            deconv_method="upsampling",
            attr=[("Male", 2), ("Young", 2)],
        ),
        True,
        FaderConfig(
            (("Male", 2), ("Young", 2)),
            img_size=64,
            init_fm=16,
            max_fm=128,
            n_layers=4,
            n_skip=1,
            upsample="upsampling",
        ),
    ),
    "32 px, pixel shuffle, decoder dropout": (
        dict(img_sz=32, init_fm=8, max_fm=32, n_layers=3, deconv_method="pixelshuffle", dec_dropout=0.3),
        False,
        FaderConfig(img_size=32, init_fm=8, max_fm=32, n_layers=3, upsample="pixelshuffle", dec_dropout=0.3),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_converted_autoencoder_computes_what_the_release_module_computes(case, release, tmp_path):
    kwargs, modern_state, config = CASES[case]
    original = randomise(release.AutoEncoder(**kwargs), seed=1)
    path = save_release_file(original, tmp_path / "model.pth", modern_state=modern_state)
    # The file really is in the 2017 format this test claims to read.
    names = pickled_names(path.read_bytes())
    assert {"src.model AutoEncoder", "torch.cuda FloatStorage", "cuda:0"} <= names
    assert not {"track_running_stats", "num_batches_tracked", "torch FloatStorage", "cpu"} & names
    assert ("torch.nn.backends.thnn _get_thnn_function_backend" in names) is not modern_state
    assert ("torch.nn.parameter Parameter" in names) is not modern_state

    loaded = load_pth(path)
    assert loaded.kind == "fader" and loaded.config == config  # read from the file, not assumed
    # The one slider-range policy (weights.format.default_slider_ranges): the authors' 1 - 2 .. 2.
    assert loaded.slider_ranges == {name: (-1.0, 2.0) for name, _ in config.attributes}
    x = torch.rand(2, 3, config.img_size, config.img_size) * 2 - 1
    y = torch.randn(2, config.n_attr)
    with torch.no_grad():
        assert (loaded.model(x, y) - original(x, y)).abs().max() <= 1e-6
    assert all(t.device.type == "cpu" for t in loaded.model.state_dict().values())


def test_converted_classifier_computes_what_the_release_module_computes(release, tmp_path):
    attrs = [(name, 2) for name in CELEBA_40]
    original = randomise(release.Classifier(img_sz=32, init_fm=8, max_fm=32, hid_dim=16, attr=attrs), seed=2)
    loaded = load_pth(save_release_file(original, tmp_path / "classifier.pth"))
    assert loaded.kind == "classifier"
    assert loaded.config == ClassifierConfig(tuple(attrs), img_size=32, init_fm=8, max_fm=32, hid_dim=16)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert (loaded.model(x) - original(x)).abs().max() <= 1e-6
    with pytest.raises(ModelError, match="this is a classifier model, a fader model is needed"):
        load_pth(tmp_path / "classifier.pth", kind="fader")


SMALL = dict(img_sz=32, init_fm=8, max_fm=32, n_layers=3)


def _small_release_file(release, tmp_path, edit=None):
    module = randomise(release.AutoEncoder(**SMALL))
    if edit:
        edit(module)
    return save_release_file(module, tmp_path / "small.pth")


def _drop(attribute):
    return lambda module: delattr(module, attribute)


def _set(attribute, value):
    return lambda module: setattr(module, attribute, value)


BROKEN = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:-5000]), "truncated"),
    "cut in the pickle": (lambda p: p.write_bytes(p.read_bytes()[:3000]), "not a readable authors' .pth file"),
    "not a pickle": (lambda p: p.write_bytes(os.urandom(3000)), "not a readable authors' .pth file"),
    "zip format": (lambda p: p.write_bytes(b"PK\x05\x06" + bytes(18)), "zip-format PyTorch file"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_files_give_one_line(case, release, tmp_path, run_cli):
    damage, expected = BROKEN[case]
    path = _small_release_file(release, tmp_path)
    damage(path)
    result = run_cli("info", path)
    assert result.exit_code == ModelError.exit_code
    assert len(result.stderr.splitlines()) == 1 and expected in result.stderr


@pytest.mark.parametrize(
    "edit, expected",
    [
        (_drop("deconv_method"), "has no deconv_method setting"),
        (_set("n_layers", True), "has n_layers=True, expected int"),
        (_set("n_attr", 3), "n_attr=3 does not match the attr list"),
        (_set("init_fm", 16), "has shape"),  # tensors checked against the stated configuration
        (_set("deconv_method", "bilinear"), "a configuration fader cannot build"),
    ],
    ids=["missing setting", "wrong type", "n_attr", "tensors", "unbuildable"],
)
def test_configuration_is_read_from_the_file_and_checked(edit, expected, release, tmp_path):
    path = _small_release_file(release, tmp_path, edit)
    with pytest.raises(ModelError, match=expected) as caught:
        load_pth(path)
    assert "\n" not in str(caught.value)


def _call(module: str, name: str, arg: str) -> bytes:
    """A pickle that calls module.name(arg): PROTO 2, GLOBAL, BINUNICODE, TUPLE1, REDUCE, STOP."""
    text = arg.encode()
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X" + len(text).to_bytes(4, "little") + text + b"\x85R."


class Unknown:
    pass


def _legacy(body: bytes) -> bytes:
    """A legacy torch file's three header pickles, as torch.save writes them, then `body`."""
    header = [0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}]
    return b"".join(pickle.dumps(obj, protocol=2) for obj in header) + body


def _payloads(marker):
    return {
        "os.system": _call("os", "system", f"touch {marker}"),
        "builtins.eval": _call("builtins", "eval", f"open({str(marker)!r}, 'w').close()"),
    }


def _malicious(marker):
    payloads = _payloads(marker)
    return {
        "os.system as the whole file": (payloads["os.system"], "os.system"),
        "builtins.eval inside a legacy file": (_legacy(payloads["builtins.eval"]), "builtins.eval"),
        "an unknown class": (_legacy(pickle.dumps(Unknown(), protocol=2)), "test_authors.Unknown"),
    }


@pytest.mark.parametrize("case", _malicious("x"))
def test_malicious_files_are_refused_before_anything_runs(case, tmp_path, run_cli):
    marker = tmp_path / "payload-ran"
    data, named = _malicious(marker)[case]
    path = tmp_path / "evil.pth"
    path.write_bytes(data)
    result = run_cli("info", path)
    assert result.exit_code == ModelError.exit_code
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "refused" in lines[0] and named in lines[0]
    assert not marker.exists()


def test_a_pickle_cannot_change_an_allowed_global(release, tmp_path):
    # GLOBAL torch._utils._rebuild_tensor, {"__defaults__": 1}, BUILD: state for a shared stand-in.
    data = b"\x80\x02ctorch._utils\n_rebuild_tensor\n}X\x0c\x00\x00\x00__defaults__K\x01sb."
    (tmp_path / "sneaky.pth").write_bytes(_legacy(data))
    with pytest.raises(ModelError, match="a pickle may not change an allow-listed global"):
        load_pth(tmp_path / "sneaky.pth")
    original = randomise(release.AutoEncoder(**SMALL))  # later files still load
    assert load_pth(save_release_file(original, tmp_path / "fine.pth")).kind == "fader"


@pytest.mark.parametrize("name", _payloads("x"))
def test_the_payloads_are_live(name, tmp_path):
    """The refusal above means something: an ordinary unpickler runs these payloads."""
    marker = tmp_path / "payload-ran"
    pickle.loads(_payloads(marker)[name])
    assert marker.exists()


def test_info_reads_a_pth_file(release, tmp_path, run_cli):
    path = _small_release_file(release, tmp_path)
    result = run_cli("info", path, "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["kind"] == "fader" and record["img_size"] == 32
    assert record["config"]["n_layers"] == 3 and record["attributes"][0]["name"] == "Eyeglasses"
    assert record["training"]["converted_from"].startswith("the authors' .pth format")

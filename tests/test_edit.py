"""`fader edit` and `fader inspect`, and the Python API under them, with tiny models trained on toy faces."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from conftest import DATA, paste_weights
from PIL import Image
from release_files import release_bytes
from release_layout import randomise

from fadercli.api import Fader
from fadercli.errors import DeviceError, InputError, NoFaceError, OutputError, UsageError
from fadercli.faces import alignment_for, find_faces
from fadercli.media.images import from_array, read_image
from fadercli.net.model import AutoEncoder
from fadercli.train import toyfaces

ASTRONAUT = DATA / "astronaut.png"
COFFEE = DATA / "coffee.png"


@pytest.fixture(scope="module")
def astronaut():
    return read_image(ASTRONAUT)


@pytest.fixture(scope="module")
def portrait_face(astronaut):
    [face] = find_faces(astronaut)
    return face


def _pixels(path):
    with Image.open(path) as im:
        return im.mode, im.size, np.asarray(im).astype(int)


def _records(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _count_encoded(monkeypatch):
    """Patch AutoEncoder.encode to record the batch size of every call."""
    calls = []
    encode = AutoEncoder.encode

    def counting(self, x):
        calls.append(len(x))
        return encode(self, x)

    monkeypatch.setattr(AutoEncoder, "encode", counting)
    return calls


# ---------------------------------------------------------------- the acceptance criteria


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_edit_keeps_size_and_mode_and_changes_only_the_face(run_cli, toy_runs, tmp_path, mode):
    source = tmp_path / f"portrait_{mode}.png"
    original = Image.open(ASTRONAUT).convert(mode)
    if mode == "RGBA":
        original.putalpha(Image.linear_gradient("L").resize(original.size))
    original.save(source)
    out = tmp_path / "out.png"
    result = run_cli("edit", source, "--model", toy_runs["both"], "--set", "Eyeglasses=2", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(out)
    assert "device: cpu" in result.stderr
    out_mode, size, edited = _pixels(out)
    _, _, before = _pixels(source)
    assert (out_mode, size) == (mode, original.size)
    photo = read_image(source)
    [face] = find_faces(photo)  # as the edit found it (grey pixels give slightly other landmarks)
    weights = paste_weights(alignment_for(face, 32), photo)
    assert np.array_equal(edited[weights == 0], before[weights == 0])  # outside the mask: bit-identical
    changed = (edited != before).reshape(*weights.shape, -1).any(axis=2)
    assert changed[weights > 0].mean() > 0.5  # the face did change
    if mode == "RGBA":
        assert np.array_equal(edited[..., 3], before[..., 3])  # alpha as it was


def test_setting_the_estimated_values_leaves_the_face_almost_unchanged(
    run_cli, toy_runs, astronaut, portrait_face, tmp_path
):
    inspected = run_cli("inspect", ASTRONAUT, "--model", toy_runs["both"], "--json")
    assert inspected.exit_code == 0, inspected.stderr
    [record] = _records(inspected.stdout)
    estimated = record["estimated"]
    assert set(estimated) == {"Eyeglasses", "Smiling"}
    out = tmp_path / "same.png"
    sets = [a for name, value in estimated.items() for a in ("--set", f"{name}={value}")]
    result = run_cli("edit", ASTRONAUT, "--model", toy_runs["both"], *sets, "-o", out)
    assert result.exit_code == 0, result.stderr
    weights = paste_weights(alignment_for(portrait_face, 32), astronaut)
    difference = np.abs(_pixels(out)[2] - astronaut.pixels)
    assert difference[weights > 0].mean() < 2
    # ... while setting another value changes it by much more.
    far = tmp_path / "far.png"
    result = run_cli(
        "edit", ASTRONAUT, "--model", toy_runs["both"], "--set", f"Eyeglasses={estimated['Eyeglasses'] + 3}", "-o", far
    )
    assert result.exit_code == 0, result.stderr
    assert np.abs(_pixels(far)[2] - astronaut.pixels)[weights > 0].mean() > 4


@pytest.mark.parametrize(
    "case, args, code, message",
    [
        ("unknown attribute", ["--set", "Eyeglases=1"], UsageError.exit_code, "Did you mean Eyeglasses?"),
        ("bad value", ["--set", "Eyeglasses=lots"], UsageError.exit_code, "'lots' is not a number"),
        ("no value", ["--set", "Eyeglasses"], UsageError.exit_code, "expected NAME=VALUE"),
        ("infinite value", ["--set", "Eyeglasses=inf"], UsageError.exit_code, "not a finite number"),
        ("missing input", ["{work}/missing.png", "--set", "Eyeglasses=1"], InputError.exit_code, "no such file"),
        (
            "output in a missing folder",
            ["--set", "Eyeglasses=1", "-o", "{work}/nowhere/out.png"],
            OutputError.exit_code,
            "no such folder",
        ),
        (
            "output under a file",
            ["--set", "Eyeglasses=1", "--out-dir", "{work}/afile/sub"],
            OutputError.exit_code,
            "cannot write",
        ),
        ("no edit", [], UsageError.exit_code, "nothing to edit"),
        ("bad face", ["--set", "Eyeglasses=1", "--face", "first"], UsageError.exit_code, "--face must be"),
        (
            "bad format",
            ["--set", "Eyeglasses=1", "--format", "xyz"],
            UsageError.exit_code,
            "'--format': 'xyz' is not one of 'png'",
        ),
    ],
)
def test_refusals_are_one_line_with_an_exit_code_and_write_nothing(
    run_cli, toy_runs, tmp_path, case, args, code, message
):
    work = tmp_path / "work"
    work.mkdir()
    (work / "afile").write_text("not a folder")
    args = [a.replace("{work}", str(work)) for a in args]
    if not args or not args[0].endswith(".png"):
        args.insert(0, str(ASTRONAUT))
    if "-o" not in args and "--out-dir" not in args:
        args += ["--out-dir", str(work / "out")]
    result = run_cli("edit", *args, "--model", toy_runs["both"])
    assert result.exit_code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fader: error: ") and message in lines[0], lines
    assert result.stdout == ""
    assert sorted(os.listdir(work)) == ["afile"]


def test_an_image_without_a_face_fails_alone(run_cli, toy_runs, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(COFFEE, folder / "a_coffee.png")
    shutil.copy(ASTRONAUT, folder / "b_astronaut.png")
    result = run_cli("edit", folder, "--model", toy_runs["both"], "--set", "Smiling=1", "--out-dir", tmp_path / "out")
    assert result.exit_code == NoFaceError.exit_code
    assert "no face found in" in result.stderr and "a_coffee.png" in result.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["b_astronaut_fader.png"]  # the others still done


def test_cuda_without_cuda_is_an_error(run_cli, toy_runs, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_cli(
        "edit",
        ASTRONAUT,
        "--model",
        toy_runs["both"],
        "--set",
        "Smiling=1",
        "--device",
        "cuda",
        "-o",
        tmp_path / "o.png",
    )
    assert result.exit_code == DeviceError.exit_code and "CUDA" in result.stderr
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- folders, batching, outputs


def _toy_folder(folder, n, size=48):
    """Toy face images (already aligned, so for --no-align) plus a photo without a face."""
    folder.mkdir()
    for i, image in enumerate(toyfaces.render(toyfaces.sample(n, seed=11), size)):
        Image.fromarray(image).save(folder / f"toy{i}.png")
    shutil.copy(COFFEE, folder / "zz_coffee.png")
    return sorted(p.name for p in folder.iterdir())


def test_no_align_edits_a_whole_folder_in_one_batch(run_cli, toy_runs, tmp_path, monkeypatch):
    names = _toy_folder(tmp_path / "in", 5)
    encoded = _count_encoded(monkeypatch)
    out = tmp_path / "out"
    result = run_cli(
        "edit",
        tmp_path / "in",
        "--model",
        toy_runs["both"],
        "--set",
        "Eyeglasses=1",
        "--no-align",
        "--out-dir",
        out,
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    assert encoded == [6]  # the six images' faces through the encoder together
    records = _records(result.stdout)
    assert [r["input"] for r in records] == [str(tmp_path / "in" / n) for n in names]  # sorted, in order
    assert sorted(os.listdir(out)) == sorted(f"{n[:-4]}_fader.png" for n in names)
    for record in records:
        assert record["faces"][0]["box"] is None and record["faces"][0]["values"]["Eyeglasses"] == 1
        _, size, edited = _pixels(record["output"])
        _, input_size, before = _pixels(record["input"])
        assert size == input_size and (edited != before).any()
    assert "6 of 6 image(s) edited" in result.stderr
    # A 600 x 400 image: its centre square is the face, as `fader train` takes it; the sides stay as they were.
    edited, before = _pixels(out / "zz_coffee_fader.png")[2], _pixels(COFFEE)[2]
    assert np.array_equal(edited[:, :100], before[:, :100]) and np.array_equal(edited[:, 500:], before[:, 500:])
    assert (edited[:, 100:500] != before[:, 100:500]).mean() > 0.5


def test_batch_size_splits_the_work_and_changes_nothing(run_cli, toy_runs, tmp_path, monkeypatch):
    _toy_folder(tmp_path / "in", 4)
    encoded = _count_encoded(monkeypatch)
    args = ["edit", tmp_path / "in", "--model", toy_runs["both"], "--set", "Smiling=0", "--no-align"]
    assert run_cli(*args, "--out-dir", tmp_path / "a").exit_code == 0
    assert run_cli(*args, "--out-dir", tmp_path / "b", "--batch-size", "2").exit_code == 0
    assert encoded == [5, 2, 2, 1]
    for name in os.listdir(tmp_path / "a"):
        # Batch norm is in eval mode: a face's result does not depend on the others in its batch.
        assert np.abs(_pixels(tmp_path / "a" / name)[2] - _pixels(tmp_path / "b" / name)[2]).max() <= 1


def test_outputs_are_kept_unless_force_and_inputs_unless_in_place(run_cli, toy_runs, tmp_path):
    photo = tmp_path / "photo.png"
    shutil.copy(ASTRONAUT, photo)
    args = ["edit", photo, "--model", toy_runs["both"], "--set", "Eyeglasses=2"]
    first = run_cli(*args)
    assert first.exit_code == 0, first.stderr
    beside = tmp_path / "photo_fader.png"  # the default: beside the input
    assert first.stdout.strip() == str(beside)
    beside.write_bytes(b"keep me")
    again = run_cli(*args)
    assert again.exit_code == OutputError.exit_code and "--force" in again.stderr
    assert beside.read_bytes() == b"keep me"
    assert run_cli(*args, "--force").exit_code == 0
    assert _pixels(beside)[1] == (512, 512)

    onto_input = run_cli(*args, "-o", photo, "--force")
    assert onto_input.exit_code == OutputError.exit_code and "--in-place" in onto_input.stderr
    assert np.array_equal(_pixels(photo)[2], _pixels(ASTRONAUT)[2])
    in_place = run_cli(*args, "--in-place")
    assert in_place.exit_code == 0, in_place.stderr
    assert not np.array_equal(_pixels(photo)[2], _pixels(ASTRONAUT)[2])
    assert sorted(os.listdir(tmp_path)) == ["photo.png", "photo_fader.png"]  # no temp files left
    assert run_cli(*args, "--in-place", "-o", tmp_path / "x.png").exit_code == UsageError.exit_code


def test_format_changes_the_output_type_and_name(run_cli, toy_runs, tmp_path):
    result = run_cli(
        "edit", ASTRONAUT, "--model", toy_runs["both"], "--set", "Smiling=1", "--out-dir", tmp_path, "--format", "jpg"
    )
    assert result.exit_code == 0, result.stderr
    assert os.listdir(tmp_path) == ["astronaut_fader.jpg"]
    with Image.open(tmp_path / "astronaut_fader.jpg") as im:
        assert im.format == "JPEG" and im.size == (512, 512)


def test_o_takes_one_input_only(run_cli, toy_runs, tmp_path):
    result = run_cli(
        "edit", ASTRONAUT, COFFEE, "--model", toy_runs["both"], "--set", "Smiling=1", "-o", tmp_path / "x.png"
    )
    assert result.exit_code == UsageError.exit_code and "--out-dir" in result.stderr


# ---------------------------------------------------------------- values, faces, models


def test_json_records_and_shift_from_the_estimate(run_cli, toy_runs, tmp_path):
    result = run_cli(
        "edit",
        ASTRONAUT,
        "--model",
        toy_runs["both"],
        "--shift",
        "eyeglasses=+0.5",
        "--set",
        "Smiling=1",
        "-o",
        tmp_path / "out.png",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    [record] = _records(result.stdout)
    assert set(record) == {"input", "output", "faces", "values", "models", "seconds"}
    assert record["input"] == str(ASTRONAUT) and record["output"] == str(tmp_path / "out.png")
    assert record["models"] == [str(toy_runs["both"] / "model.safetensors")]  # which weights made it
    assert record["values"] == {"set": {"Smiling": 1.0}, "shift": {"Eyeglasses": 0.5}}
    assert record["seconds"] > 0
    [face] = record["faces"]
    assert face["face"] == 0 and len(face["box"]) == 4
    assert face["values"]["Eyeglasses"] == pytest.approx(face["estimated"]["Eyeglasses"] + 0.5, abs=2e-4)
    assert face["values"]["Smiling"] == 1


def test_face_index_edits_only_that_face(run_cli, toy_runs, astronaut, tmp_path):
    head = astronaut.pixels[30:250, 140:310]
    canvas = np.full((600, 900, 3), 110, np.uint8)
    big = np.asarray(Image.fromarray(head).resize((272, 352), Image.Resampling.BICUBIC))
    canvas[60:412, 40:312] = big
    canvas[200:398, 560:713] = np.asarray(Image.fromarray(head).resize((153, 198), Image.Resampling.LANCZOS))
    photo = tmp_path / "two.png"
    Image.fromarray(canvas).save(photo)
    faces = find_faces(from_array(canvas))
    assert len(faces) == 2
    result = run_cli(
        "edit",
        photo,
        "--model",
        toy_runs["both"],
        "--set",
        "Eyeglasses=2",
        "--face",
        "1",
        "-o",
        tmp_path / "one.png",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    assert [f["face"] for f in _records(result.stdout)[0]["faces"]] == [1]
    edited = _pixels(tmp_path / "one.png")[2]
    changed = (edited != canvas).any(axis=2)
    assert changed[:, 450:].sum() > 1000 and not changed[:, :450].any()  # the smaller face, on the right, only
    missing = run_cli(
        "edit", photo, "--model", toy_runs["both"], "--set", "Eyeglasses=2", "--face", "2", "-o", tmp_path / "no.png"
    )
    assert missing.exit_code == NoFaceError.exit_code and "no face 2" in missing.stderr
    both = run_cli(
        "edit", photo, "--model", toy_runs["both"], "--set", "Eyeglasses=2", "-o", tmp_path / "both.png", "--json"
    )
    assert [f["face"] for f in _records(both.stdout)[0]["faces"]] == [0, 1]  # --face all by default


def test_two_single_attribute_models_are_chained_on_the_same_face(run_cli, toy_runs, astronaut, tmp_path):
    runs = [toy_runs["eyeglasses"], toy_runs["smiling"]]  # 32 px and 64 px
    chained = Fader.load(runs, device="cpu")
    assert chained.attributes == ["Eyeglasses", "Smiling"]
    both = chained.edit(astronaut, {"Eyeglasses": 2, "Smiling": -1})
    [face] = both.faces
    assert face.values == {"Eyeglasses": 2, "Smiling": -1}
    # The Smiling model worked on the face the Eyeglasses model left: its estimate differs from the
    # one it makes on the original face.
    alone = Fader.load(runs[1], device="cpu").inspect(astronaut)[0].estimated["Smiling"]
    assert face.estimated["Smiling"] != pytest.approx(alone, abs=1e-6)
    eyeglasses_only = chained.edit(astronaut, {"Eyeglasses": 2})
    assert eyeglasses_only.faces[0].values == {"Eyeglasses": 2}  # the Smiling model not applied
    assert not np.array_equal(both.image.pixels, eyeglasses_only.image.pixels)
    # The CLI does the same with --model twice.
    out = tmp_path / "chained.png"
    result = run_cli(
        "edit", ASTRONAUT, "-m", runs[0], "-m", runs[1], "--set", "Eyeglasses=2", "--set", "Smiling=-1", "-o", out
    )
    assert result.exit_code == 0, result.stderr
    assert np.array_equal(_pixels(out)[2], both.image.pixels)


def test_without_model_each_attribute_takes_its_registry_model(run_cli, toy_runs, server, register, home, tmp_path):
    for name in ("eyeglasses", "smiling"):
        server.plan.files[f"/{name}.safetensors"] = (toy_runs[name] / "model.safetensors").read_bytes()
    register(
        {
            "toy-eyeglasses": {"url": server.url("/eyeglasses.safetensors"), "attribute": "Eyeglasses"},
            "toy-smiling": {"url": server.url("/smiling.safetensors"), "attribute": "Smiling"},
        }
    )
    args = ["--set", "Eyeglasses=2", "--set", "Smiling=-1", "--quiet"]
    result = run_cli("edit", ASTRONAUT, *args, "-o", tmp_path / "registry.png")
    assert result.exit_code == 0, result.stderr
    explicit = run_cli(
        "edit",
        ASTRONAUT,
        *args,
        "-m",
        toy_runs["eyeglasses"],
        "-m",
        toy_runs["smiling"],
        "-o",
        tmp_path / "explicit.png",
    )
    assert explicit.exit_code == 0, explicit.stderr
    assert np.array_equal(_pixels(tmp_path / "registry.png")[2], _pixels(tmp_path / "explicit.png")[2])
    unknown = run_cli("edit", ASTRONAUT, "--set", "Bald=1", "-o", tmp_path / "bald.png")
    assert unknown.exit_code == UsageError.exit_code and "no model in the registry edits 'Bald'" in unknown.stderr


def test_inspect_prints_estimates_and_the_runs_classifier(run_cli, toy_runs, astronaut):
    text = run_cli("inspect", ASTRONAUT, "--model", toy_runs["both"])
    assert text.exit_code == 0, text.stderr
    [line] = text.stdout.splitlines()
    assert line.startswith(f"{ASTRONAUT}  face 0  Eyeglasses ") and "Smiling" in line and "(classifier " in line
    [record] = _records(run_cli("inspect", ASTRONAUT, "--model", toy_runs["both"], "--json").stdout)
    estimated = Fader.load(toy_runs["both"], device="cpu").inspect(astronaut)[0].estimated
    assert record["estimated"] == {k: round(v, 4) for k, v in estimated.items()}
    assert set(record["probabilities"]) == {"Eyeglasses", "Smiling"}
    assert all(0 <= p <= 1 for p in record["probabilities"].values())
    no_face = run_cli("inspect", COFFEE, "--model", toy_runs["both"])
    assert no_face.exit_code == NoFaceError.exit_code
    whole = _records(run_cli("inspect", COFFEE, "--model", toy_runs["both"], "--no-align", "--json").stdout)
    assert whole[0]["box"] is None and set(whole[0]["estimated"]) == {"Eyeglasses", "Smiling"}


def test_the_authors_models_end_to_end_with_their_classifier(
    run_cli, release, server, register, home, tmp_path, monkeypatch
):
    """Stand-ins for the authors' eyeglasses model and classifier256, in their .pth format, served locally."""
    fader = randomise(release.AutoEncoder(img_sz=32, init_fm=8, max_fm=32, n_layers=3), seed=4)
    judge = randomise(
        release.Classifier(img_sz=32, init_fm=8, max_fm=32, hid_dim=16, attr=[("Eyeglasses", 2), ("Male", 2)]), seed=5
    )
    server.plan.files["/eyeglasses.pth"] = release_bytes(fader)
    server.plan.files["/classifier256.pth"] = release_bytes(judge)
    register(
        {
            "eyeglasses": {"url": server.url("/eyeglasses.pth")},
            "classifier256": {"url": server.url("/classifier256.pth")},
        }
    )
    edited = run_cli("edit", ASTRONAUT, "--set", "Eyeglasses=1.5", "-o", tmp_path / "out.png", "--json")
    assert edited.exit_code == 0, edited.stderr
    assert "CC-BY-NC 4.0" in edited.stderr  # the licence notice at download
    assert _records(edited.stdout)[0]["faces"][0]["values"] == {"Eyeglasses": 1.5}
    inspected = run_cli("inspect", ASTRONAUT, "--attr", "eyeglasses", "--json")
    assert inspected.exit_code == 0, inspected.stderr
    [record] = _records(inspected.stdout)
    assert set(record["estimated"]) == {"Eyeglasses"} and set(record["probabilities"]) == {"Eyeglasses", "Male"}
    # Without the classifier (offline, not cached) the estimates still come, with a note.
    (home / "models" / "classifier256" / "model.safetensors").unlink()
    monkeypatch.setenv("FADER_OFFLINE", "1")
    offline = run_cli("inspect", ASTRONAUT, "--model", "eyeglasses", "--json")
    assert offline.exit_code == 0, offline.stderr
    assert "no classifier probabilities" in offline.stderr
    [record] = _records(offline.stdout)
    assert set(record["estimated"]) == {"Eyeglasses"} and "probabilities" not in record


# ---------------------------------------------------------------- the Python API


def test_api_edits_pil_images_and_arrays_in_kind(toy_runs, astronaut):
    fader = Fader.load(toy_runs["both"], device="cpu")
    grey = Image.open(ASTRONAUT).convert("L")
    edited = fader.edit(grey, {"Smiling": 1.5})
    assert isinstance(edited.image, Image.Image) and edited.image.mode == "L" and edited.image.size == grey.size
    array = np.asarray(Image.open(ASTRONAUT).convert("RGB"))
    from_pixels = fader.edit(array, {"Smiling": 1.5})
    assert isinstance(from_pixels.image, np.ndarray) and from_pixels.image.shape == array.shape
    from_file = fader.edit(ASTRONAUT, {"Smiling": 1.5})
    assert np.array_equal(from_file.image.pixels, from_pixels.image)  # the same whatever the input's kind
    assert np.array_equal(astronaut.pixels, array)  # inputs are never changed in place
    with pytest.raises(UsageError, match="unknown attribute 'Hat'"):
        fader.edit(array, {"Hat": 1})
    with pytest.raises(UsageError, match="given more than once"):
        fader.edit(array, {"Smiling": 1}, shift={"smiling": 0.5})


def test_api_batches_faces_across_images_and_skips_failures(toy_runs, astronaut, monkeypatch):
    fader = Fader.load(toy_runs["both"], device="cpu")
    encoded = _count_encoded(monkeypatch)
    failed = []
    images = [astronaut, ASTRONAUT, COFFEE, Image.open(ASTRONAUT)]
    results = list(fader.edit_many(images, {"Eyeglasses": 0}, on_error=lambda image, e: failed.append((image, e))))
    assert encoded == [3]
    assert [r.source for r in results] == [images[0], images[1], images[3]]
    assert len(failed) == 1 and failed[0][0] == COFFEE and isinstance(failed[0][1], NoFaceError)
    with pytest.raises(NoFaceError):
        list(fader.edit_many([COFFEE], {"Eyeglasses": 0}))

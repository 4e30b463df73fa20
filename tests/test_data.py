"""Training data: the three label formats, skips and errors, the memory-mapped cache, the split."""

import numpy as np
import pytest
from PIL import Image

from fadercli.errors import InputError, UsageError
from fadercli.train import toyfaces
from fadercli.train.data import BatchPlan, prepare
from fadercli.train.images import Preprocess, build_cache, load_image
from fadercli.train.sources import find_source


def _faces(folder, n, size=32, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    params = toyfaces.sample(n, seed)
    names = []
    for i, image in enumerate(toyfaces.render(params, size)):
        Image.fromarray(image).save(folder / f"f{i:03d}.png")
        names.append(f"f{i:03d}.png")
    return names, toyfaces.labels(params)


def test_labels_csv_with_every_value_spelling(tmp_path):
    names, _ = _faces(tmp_path / "img", 8)
    values = ["1", "0", "-1", "TRUE", "false", "Yes", "no", "1"]
    rows = "".join(f"img/{n},{v}, {1 - i % 2}\n" for i, (n, v) in enumerate(zip(names, values)))
    (tmp_path / "labels.csv").write_text("path,Smiling,Hat\n" + rows)
    source = find_source(tmp_path)
    assert source.attributes.names == ["Smiling", "Hat"]
    assert source.labels[:, 0].tolist() == [1, 0, 0, 1, 0, 1, 0, 1]
    assert source.labels[:, 1].tolist() == [1, 0] * 4
    assert source.files[0] == tmp_path / "img" / names[0]


def test_csv_skips_missing_files_and_bad_values_and_names_them(tmp_path):
    names, _ = _faces(tmp_path, 4)
    (tmp_path / "labels.csv").write_text(
        "image,Smiling\n" + f"{names[0]},1\n{names[1]},maybe\nghost.png,1\n{names[2]},0\n{names[3]},1,1\n"
    )
    source = find_source(tmp_path)
    assert len(source.files) == 2
    assert source.skips.counts == {"bad label value": 1, "missing file": 1, "wrong number of columns": 1}
    assert any("ghost.png" in line for line in source.skips.lines())


def test_celeba_attribute_file_and_crop(tmp_path):
    images = tmp_path / "img_align"
    images.mkdir()
    for i in range(4):
        pixels = np.zeros((218, 178, 3), np.uint8)
        pixels[:20] = 255  # the rows the release's crop drops
        pixels[198:] = 255
        pixels[20:198, :, 1] = 100 + i
        Image.fromarray(pixels).save(images / f"{i:06d}.jpg", quality=100)
    names = " ".join(toyfaces.ATTRIBUTES)
    rows = "".join(f"{i:06d}.jpg {' '.join(['1' if (i + k) % 2 else '-1' for k in range(4)])}\n" for i in range(4))
    labels = tmp_path / "list_attr.txt"
    labels.write_text(f"4\n{names}\n{rows}")
    source = find_source(None, labels=labels, images=images, attributes=["smiling"])
    assert source.attributes.names == ["Smiling"]
    assert source.labels[:, 0].tolist() == [1, 0, 1, 0]
    crop = load_image(source.files[1], Preprocess(64, "celeba"))
    assert crop.shape == (64, 64, 3)
    assert crop[..., 0].max() < 20  # no white band from the dropped rows
    assert abs(int(crop[..., 1].mean()) - 101) <= 2


def test_with_and_without_subfolders(tmp_path):
    _faces(tmp_path / "with_Eyeglasses", 3)
    _faces(tmp_path / "without_Eyeglasses", 5, seed=1)
    source = find_source(tmp_path)
    assert source.attributes.names == ["Eyeglasses"]
    assert source.labels[:, 0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]


def test_unrecognised_folder_explains_the_formats(tmp_path):
    _faces(tmp_path / "some", 2)
    with pytest.raises(InputError, match="with_<Name>/ and without_<Name>/"):
        find_source(tmp_path)
    with pytest.raises(InputError, match="no such folder"):
        find_source(tmp_path / "does-not-exist")


def test_unknown_attribute_is_a_usage_error(tmp_path):
    names, _ = _faces(tmp_path, 2)
    (tmp_path / "labels.csv").write_text(f"image,Smiling\n{names[0]},1\n{names[1]},0\n")
    with pytest.raises(UsageError, match="Did you mean Smiling"):
        find_source(tmp_path, attributes=["Smilin"])


def test_unreadable_images_are_skipped_and_a_constant_attribute_refused(tmp_path):
    names, _ = _faces(tmp_path, 6)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "notes.jpg").write_text("hello")
    rows = [f"{n},{i % 2},1" for i, n in enumerate(names)] + ["broken.png,1,1", "notes.jpg,0,1"]
    (tmp_path / "labels.csv").write_text("image,Smiling,Hat\n" + "\n".join(rows) + "\n")
    messages = []
    dataset = prepare(tmp_path, img_size=32, cache_root=tmp_path / "cache", attributes=["Smiling"], log=messages.append)
    assert len(dataset.train) + len(dataset.val) == 6
    assert any("skipped 2 (unreadable image): broken.png, notes.jpg" in m for m in messages)
    with pytest.raises(InputError, match="Hat is 1 for every image"):
        prepare(tmp_path, img_size=32, cache_root=tmp_path / "cache")


def test_empty_folder_and_all_rows_bad(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError):
        find_source(tmp_path / "empty")
    (tmp_path / "labels.csv").write_text("image,Smiling\nmissing.png,1\n")
    with pytest.raises(InputError, match="no usable labelled images.*missing file"):
        find_source(tmp_path)


def test_cache_is_reused_and_rebuilt_when_settings_or_files_change(tmp_path):
    names, _ = _faces(tmp_path / "img", 5)
    files = [tmp_path / "img" / n for n in names]
    first = build_cache(files, Preprocess(32), tmp_path / "cache")
    again = build_cache(files, Preprocess(32), tmp_path / "cache")
    assert again.folder == first.folder
    assert np.array_equal(first.read(np.array([2]))[0], np.asarray(Image.open(files[2]).convert("RGB")))
    bigger = build_cache(files, Preprocess(64), tmp_path / "cache")
    assert bigger.folder != first.folder and bigger.read(np.arange(5)).shape == (5, 64, 64, 3)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(files[0])
    changed = build_cache(files, Preprocess(32), tmp_path / "cache")
    assert changed.folder != first.folder and changed.read(np.array([0])).max() == 0
    assert not list((tmp_path / "cache").glob(".*tmp"))  # no half-built caches left behind


def test_parallel_cache_build_matches_serial(tmp_path):
    names, _ = _faces(tmp_path / "img", 40)
    files = [tmp_path / "img" / n for n in names]
    serial = build_cache(files, Preprocess(32), tmp_path / "a", workers=1)
    parallel = build_cache(files, Preprocess(32), tmp_path / "b", workers=2)
    rows = np.arange(40)
    assert np.array_equal(serial.read(rows), parallel.read(rows))
    assert serial.read(rows).std() > 10  # real pictures, not an empty array


def test_split_is_seeded_and_disjoint(tmp_path):
    names, labels = _faces(tmp_path, 40)
    (tmp_path / "labels.csv").write_text("image,Smiling\n" + "".join(f"{n},{i % 2}\n" for i, n in enumerate(names)))
    a = prepare(tmp_path, img_size=32, cache_root=tmp_path / "cache", seed=1, val_fraction=0.25)
    b = prepare(tmp_path, img_size=32, cache_root=tmp_path / "cache", seed=1, val_fraction=0.25)
    c = prepare(tmp_path, img_size=32, cache_root=tmp_path / "cache", seed=2, val_fraction=0.25)
    assert len(a.val) == 10 and len(a.train) == 30
    assert not set(a.train) & set(a.val)
    assert np.array_equal(a.val, b.val) and not np.array_equal(a.val, c.val)


def test_batch_plan_is_a_function_of_the_step_and_ranks_share_a_global_batch():
    rows = np.arange(100, 140)
    plan = BatchPlan(rows, 8, seed=3)
    epoch0 = np.concatenate([plan.batch(s)[0] for s in range(5)])
    assert sorted(epoch0) == list(rows)  # every row once per epoch
    fresh = BatchPlan(rows, 8, seed=3)
    assert np.array_equal(fresh.batch(7)[0], plan.batch(7)[0])  # resumable: no hidden state
    assert not np.array_equal(plan.batch(5)[0], plan.batch(0)[0])  # a new order each epoch
    halves = [BatchPlan(rows, 8, seed=3, rank=r, world=2).batch(2)[0] for r in (0, 1)]
    assert sorted(np.concatenate(halves)) == sorted(plan.batch(2)[0])


def test_align_finds_the_face_and_skips_photos_without_one(tmp_path):
    import shutil

    from conftest import DATA

    shutil.copy(DATA / "astronaut.png", tmp_path / "a.png")
    Image.open(DATA / "astronaut.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "b.png")
    shutil.copy(DATA / "coffee.png", tmp_path / "c.png")
    (tmp_path / "labels.csv").write_text("image,Smiling\na.png,1\nb.png,0\nc.png,1\n")
    messages = []
    dataset = prepare(tmp_path, img_size=64, cache_root=tmp_path / "cache", align=True, log=messages.append)
    assert sorted(np.concatenate([dataset.train, dataset.val])) == [0, 1]
    assert any("skipped 1 (no face found): c.png" in m for m in messages)
    a, b = dataset.cache.read(np.array([0, 1])).astype(int)
    # The mirrored photo aligns to the mirrored crop: the same framing, found independently.
    assert np.abs(a[:, ::-1] - b).mean() < 12
    plain = prepare(tmp_path, img_size=64, cache_root=tmp_path / "cache", align=False, log=messages.append)
    assert len(plain.train) + len(plain.val) == 3  # without alignment nothing is skipped
    with pytest.raises(UsageError, match="--crop"):
        prepare(tmp_path, img_size=64, cache_root=tmp_path / "cache", align=True, crop="celeba")

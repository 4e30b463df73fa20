"""Training data: labelled image sources, a memory-mapped uint8 cache, the split, the batches.

Three ways to label a set of images (the first that matches wins):
  1. `labels.csv` in the data folder: first column the image path relative to the folder, then one
     column per attribute; values 1/0, 1/-1, true/false, yes/no (any case).
  2. A CelebA-style attribute file (`--labels FILE --images DIR`): first line the count, second
     the attribute names, then `file v1 v2 ...` with 1/-1.
  3. For one attribute, two subfolders `with_<Name>/` and `without_<Name>/`.

Images are decoded, cropped and resized once into a cache (one raw uint8 array file, the layout of
an np.memmap) keyed on the image files and the preprocessing settings, so RAM stays flat whatever
the dataset size and epochs decode no image files. Labels are read fresh each run and joined to
the cache, so editing labels.csv costs no re-decoding.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np

from fadercli.attributes import AttributeSet
from fadercli.errors import InputError, UsageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm"}
CACHE_VERSION = 2
EVAL_FACES = 500  # swap accuracy near 90% to about 1.5 points (one standard error)
CROPS = ("none", "celeba")
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "-1", "false", "no", "n", "f"}
FORMATS_HELP = (
    "a folder with labels.csv (image path, then one 1/0 column per attribute); "
    "--labels list_attr.txt --images DIR (CelebA style); "
    "or a folder with with_<Name>/ and without_<Name>/ subfolders"
)


@dataclass
class Skips:
    """Rows and images left out, counted by reason, with the first few named."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, example: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        names = self.examples.setdefault(reason, [])
        if len(names) < 3:
            names.append(example)

    def lines(self) -> list[str]:
        return [
            f"skipped {n} ({reason}): {', '.join(self.examples[reason])}{', ...' if n > 3 else ''}"
            for reason, n in self.counts.items()
        ]


@dataclass
class Source:
    """Image files and their labels, before decoding."""

    description: str
    files: list[Path]
    attributes: AttributeSet
    labels: np.ndarray  # (n_files, n_attributes) of 0/1
    skips: Skips


def _parse_flag(text: str) -> int | None:
    value = text.strip().lower()
    if value in _TRUE:
        return 1
    if value in _FALSE:
        return 0
    return None


def _inside(relative: str) -> bool:
    """Whether a path a labels file gives stays inside the data folder: relative, and no `..`
    (a labels file from elsewhere must not make fader read, say, ~/.ssh)."""
    parts = PurePath(relative.replace("\\", "/")).parts
    return bool(parts) and not PurePath(relative).is_absolute() and not relative.startswith(("/", "\\")) and ".." not in parts


def _collect(root: Path, rows, names: list[str], skips: Skips) -> tuple[list[Path], list[list[int]]]:
    """Keep rows whose file exists and whose values all parse; count the rest."""
    files, labels = [], []
    for line, (relative, values) in rows:
        if len(values) != len(names):
            skips.add("wrong number of columns", f"line {line}")
            continue
        flags = [_parse_flag(v) for v in values]
        if None in flags:
            skips.add("bad label value", f"line {line}")
            continue
        if not _inside(relative):
            skips.add("outside the data folder", f"line {line}")
            continue
        path = root / relative
        if not path.is_file():
            skips.add("missing file", relative)
            continue
        files.append(path)
        labels.append(flags)
    return files, labels


def read_text(path: Path, what: str) -> str:
    """A text file people make by hand or export from a spreadsheet: UTF-8 (with or without a BOM),
    or UTF-16 with its BOM ("Unicode text"); an InputError line for anything else."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read the {what} ({e.strerror})") from None
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: the {what} is not UTF-8 or UTF-16 text (byte {e.start}); save it as UTF-8") from None


def _csv_source(folder: Path, skips: Skips) -> tuple[list[str], list[Path], list[list[int]]]:
    path = folder / "labels.csv"
    text = read_text(path, "labels file")
    try:
        dialect = "excel-tab" if "\t" in text.partition("\n")[0] and "," not in text.partition("\n")[0] else "excel"
        rows = list(csv.reader(io.StringIO(text, newline=""), dialect))
    except csv.Error as e:
        raise InputError(f"{path}: not a readable CSV file ({e})") from None
    if not rows or len(rows[0]) < 2:
        raise InputError(f"{folder / 'labels.csv'}: needs a header: image, then attribute names")
    names = [n.strip() for n in rows[0][1:]]
    body = ((i + 2, (r[0].strip(), r[1:])) for i, r in enumerate(rows[1:]) if any(c.strip() for c in r))
    return names, *_collect(folder, body, names, skips)


def _celeba_source(labels: Path, images: Path, skips: Skips) -> tuple[list[str], list[Path], list[list[int]]]:
    lines = read_text(labels, "attribute file").splitlines()
    if len(lines) < 2:
        raise InputError(f"{labels}: expected a count line, then the attribute names")
    names = lines[1].split()
    body = ((i + 3, (r.split()[0], r.split()[1:])) for i, r in enumerate(lines[2:]) if r.strip())
    return names, *_collect(images, body, names, skips)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _subfolder_source(folder: Path) -> tuple[list[str], list[Path], list[list[int]]] | None:
    subs = {p.name: p for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else {}
    pairs = [n[len("with_") :] for n in subs if n.startswith("with_") and f"without_{n[len('with_'):]}" in subs]
    if len(pairs) != 1:
        return None
    name = pairs[0]
    positives, negatives = _images_in(subs[f"with_{name}"]), _images_in(subs[f"without_{name}"])
    return [name], positives + negatives, [[1]] * len(positives) + [[0]] * len(negatives)


def find_source(
    data: Path | None, *, labels: Path | None = None, images: Path | None = None, attributes: list[str] | None = None
) -> Source:
    """Recognise the labelling format of `data`, read the labels, and pick `attributes` (default all)."""
    skips = Skips()
    if labels is not None:
        images = images or data
        if images is None or not images.is_dir():
            raise InputError("--labels needs the image folder: --images DIR")
        if not labels.is_file():
            raise InputError(f"{labels}: no such attribute file")
        names, files, table = _celeba_source(labels, images, skips)
        description = f"{labels} + {images}"
    elif data is None or not data.exists():
        raise InputError(f"{data}: no such folder" if data else f"no training data given; use {FORMATS_HELP}")
    elif (data / "labels.csv").is_file():
        names, files, table = _csv_source(data, skips)
        description = str(data / "labels.csv")
    else:
        found = _subfolder_source(data)
        if found is None:
            raise InputError(f"{data}: no labelled images found; use {FORMATS_HELP}")
        names, files, table = found
        description = f"{data} (with_/without_ subfolders)"
    if not files:
        extra = f" ({'; '.join(skips.lines())})" if skips.counts else ""
        raise InputError(f"{description}: no usable labelled images{extra}")
    try:
        all_attributes = AttributeSet.binary(names)
    except ValueError as e:
        raise InputError(f"{description}: {e}") from None
    chosen = [all_attributes.resolve(a) for a in attributes] if attributes else all_attributes.names
    columns = [all_attributes.names.index(a) for a in chosen]
    return Source(description, files, AttributeSet.binary(chosen), np.asarray(table, dtype=np.int64)[:, columns], skips)


# ---------------------------------------------------------------- preprocessing and cache


@dataclass(frozen=True)
class Preprocess:
    """How a file becomes a training image: the cache is keyed on this."""

    img_size: int
    crop: str = "none"  # "celeba": the release's crop of CelebA aligned images (rows 20..197)
    align: bool = False  # find the largest face and align it as `fader edit` does

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {', '.join(CROPS)}")
        if self.align and self.crop != "none":
            raise ValueError("--crop is for images that are already aligned; it cannot go with --align")


def load_image(path: Path, prep: Preprocess, detector: str | None = None) -> np.ndarray:
    """uint8 (size, size, 3). Aligned: the largest face, framed as CelebA's. Otherwise the image
    EXIF-rotated, cropped, centre-squared and resized (Lanczos up, area down)."""
    if prep.align:
        from fadercli.faces import align_faces
        from fadercli.images import read_image

        face = align_faces(read_image(path), size=prep.img_size, choice="largest", model=detector)[0]
        return np.clip(np.rint(face.crop * 255), 0, 255).astype(np.uint8)
    from PIL import ImageOps

    from fadercli.images import centre_square, open_image, resize_square

    with open_image(path, str(path)) as im:  # the gate every untrusted image goes through
        im = ImageOps.exif_transpose(im).convert("RGB")
    if prep.crop == "celeba":
        im = im.crop((0, 20, im.width, 20 + im.width))  # a 178x178 square from a 178x218 image
    return resize_square(im.crop(centre_square(*im.size)), prep.img_size)


def _fill(args) -> list[str | None]:
    """Worker: decode files[i] into row start + i of the array file; per file None, or why not."""
    from fadercli.errors import NoFaceError

    array_path, row_bytes, start, files, prep, detector = args
    problems: list[str | None] = []
    with open(array_path, "r+b") as f:
        for i, path in enumerate(files):
            try:
                image = load_image(Path(path), prep, detector)
            except NoFaceError:
                problems.append("no face found")
                continue
            except Exception:  # any decoder failure: the file is skipped and counted, not fatal
                problems.append("unreadable image")
                continue
            f.seek((start + i) * row_bytes)
            f.write(image.tobytes())
            problems.append(None)
    return problems


def cache_key(files: list[Path], prep: Preprocess) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"version": CACHE_VERSION, "prep": prep.__dict__}, sort_keys=True).encode())
    for path in files:
        # The change time too: an edit that keeps the size and sets the old mtime back (touch -r,
        # some sync tools) still changes it, and nobody can set it.
        st = path.stat()
        h.update(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\n".encode())
    return h.hexdigest()[:24]


@dataclass
class ImageCache:
    """Decoded images of a list of files in one raw uint8 array file; `valid` marks files that decoded.

    Rows are fetched with positioned reads, not a memory map: the pages then stay in the OS page
    cache instead of the process, so a training process's RSS is the same for 1,000 or 1,000,000
    images (a memory map's touched pages count as the process's own).
    """

    folder: Path
    files: list[str]
    problems: list[str | None]  # per file: None if decoded, else why it was skipped
    img_size: int

    @property
    def valid(self) -> np.ndarray:
        return np.array([p is None for p in self.problems], dtype=bool)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.files), self.img_size, self.img_size, 3)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """uint8 (len(rows), S, S, 3) for the given row indices."""
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        row_bytes = out[0].nbytes if len(rows) else 0
        with open(self.folder / "images.u8", "rb", buffering=0) as f:
            for i, row in enumerate(rows):
                f.seek(int(row) * row_bytes)
                f.readinto(memoryview(out[i]).cast("B"))
        return out

    def chunks(self, rows: np.ndarray, labels: np.ndarray):
        """(images, labels) in chunks, for evaluation passes: 128 faces at 64 px, fewer when larger,
        so an evaluation's memory does not depend on how many faces it covers."""
        size = max(8, 2**19 // self.img_size**2)
        for start in range(0, len(rows), size):
            picked = rows[start : start + size]
            yield self.read(picked), labels[picked]


def build_cache(
    files: list[Path],
    prep: Preprocess,
    root: Path,
    *,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> ImageCache:
    """Decode `files` once into `root/<key>/`; later calls with the same files and settings reuse it."""
    key = cache_key(files, prep)
    folder = root / key
    index = folder / "index.json"
    if not index.is_file():
        root.mkdir(parents=True, exist_ok=True)
        _remove_stale(root)
        tmp = root / f".{key}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            _fill_cache(tmp, folder, files, prep, workers, progress)
        except BaseException:  # Ctrl-C or a failure: no full-size array file left behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    meta = json.loads(index.read_text())
    return ImageCache(folder, meta["files"], meta["problems"], meta["img_size"])


def _remove_stale(root: Path) -> None:
    """Temp folders of cache builds whose process is gone (killed before it could clean up)."""
    for tmp in root.glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process
        return True
    return True


def _fill_cache(tmp: Path, folder: Path, files: list[Path], prep: Preprocess, workers: int,
                progress: Callable[[int, int], None] | None) -> None:
    """Decode `files` into tmp/images.u8 and write tmp/index.json, then move tmp to `folder`."""
    row_bytes = prep.img_size * prep.img_size * 3
    array = tmp / "images.u8"
    with open(array, "wb") as f:
        f.truncate(len(files) * row_bytes)
    chunk = max(1, min(256, len(files) // (4 * max(workers, 1)) or 1))
    detector = None
    if prep.align:  # fetched once here, not by every worker
        from fadercli.faces import detector_model

        detector = str(detector_model())
    jobs = [
        (str(array), row_bytes, s, [str(p) for p in files[s : s + chunk]], prep, detector)
        for s in range(0, len(files), chunk)
    ]
    problems: list[str | None] = []
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            for found in pool.map(_fill, jobs):
                problems += found
                if progress:
                    progress(len(problems), len(files))
    else:
        for job in jobs:
            problems += _fill(job)
            if progress:
                progress(len(problems), len(files))
    meta = {"files": [str(p.resolve()) for p in files], "problems": problems, "img_size": prep.img_size}
    (tmp / "index.json").write_text(json.dumps(meta))
    try:
        os.replace(tmp, folder)
    except OSError:  # another process finished the same cache first: use theirs
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- the dataset a run trains on


@dataclass
class Dataset:
    """Cached images with labels, split into train and validation index arrays."""

    description: str
    cache: ImageCache
    attributes: AttributeSet
    labels: np.ndarray  # (n_cache_rows, n_attributes)
    train: np.ndarray  # cache row indices
    val: np.ndarray

    def scored(self) -> np.ndarray:
        """The validation faces a run is scored on: at most EVAL_FACES, so scoring time is bounded."""
        return self.val[:EVAL_FACES]

    def balance(self) -> list[str]:
        """One line per attribute: the share of positives in train and validation."""
        out = []
        for i, name in enumerate(self.attributes.names):
            t, v = self.labels[self.train, i].mean(), self.labels[self.val, i].mean() if len(self.val) else float("nan")
            out.append(f"{name}: {t:.0%} with in train, {v:.0%} in validation")
        return out


def split(n_rows: int, rows: np.ndarray, seed: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """A seeded train/validation split of `rows` (at least one of each when possible)."""
    rng = np.random.default_rng(seed)
    order = rows[rng.permutation(len(rows))]
    n_val = min(max(1, round(len(rows) * val_fraction)), len(rows) - 1) if len(rows) > 1 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def make_dataset(source: Source, cache: ImageCache, *, seed: int, val_fraction: float) -> Dataset:
    """Join labels to the decoded images; refuse attributes that never change."""
    rows = np.flatnonzero(cache.valid)
    for path, problem in zip(cache.files, cache.problems):
        if problem is not None:
            source.skips.add(problem, Path(path).name)
    if len(rows) < 2:
        problems = f" ({'; '.join(source.skips.lines())})" if source.skips.counts else ""
        raise InputError(f"{source.description}: fewer than 2 usable images{problems}")
    for i, name in enumerate(source.attributes.names):
        values = np.unique(source.labels[rows, i])
        if len(values) < 2:
            raise InputError(
                f"{source.description}: attribute {name} is {values[0]} for every image; "
                "a model cannot learn to change an attribute it never sees change"
            )
    train, val = split(len(cache.files), rows, seed, val_fraction)
    return Dataset(source.description, cache, source.attributes, source.labels, train, val)


class BatchPlan:
    """Which rows make up every batch: a seeded permutation per epoch, with flips.

    A pure function of (seed, step), so a resumed run sees exactly the batches it would have seen,
    and each DDP rank takes its own slice of the same global batch.
    """

    def __init__(self, rows: np.ndarray, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        if len(rows) < batch_size:
            raise InputError(f"{len(rows)} training images are fewer than one batch of {batch_size}")
        self.rows, self.batch_size, self.seed, self.rank, self.world = rows, batch_size, seed, rank, world
        self.per_epoch = len(rows) // batch_size
        self._epoch, self._order, self._flips = -1, None, None

    def set_epoch(self, epoch: int) -> None:
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._order = rng.permutation(len(self.rows))
            self._flips = rng.random(len(self.rows)) < 0.5
            self._epoch = epoch

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(cache rows, flip flags) of this rank's share of global batch `step`, rows sorted for locality."""
        self.set_epoch(step // self.per_epoch)
        start = (step % self.per_epoch) * self.batch_size
        picked = np.arange(start + self.rank, start + self.batch_size, self.world)
        rows, flips = self.rows[self._order[picked]], self._flips[picked]
        order = np.argsort(rows, kind="stable")
        return rows[order], flips[order]


def prepare(
    data: Path | None,
    *,
    img_size: int,
    cache_root: Path,
    labels: Path | None = None,
    images: Path | None = None,
    crop: str = "none",
    align: bool = False,
    attributes: list[str] | None = None,
    seed: int = 0,
    val_fraction: float = 0.05,
    workers: int = 1,
    log: Callable[[str], None] = lambda message: None,
) -> Dataset:
    """Source -> cache -> split, saying on `log` what was skipped and how the split is balanced."""
    source = find_source(data, labels=labels, images=images, attributes=attributes)
    started = len(source.files)
    try:
        preprocess = Preprocess(img_size, crop, align)
    except ValueError as e:
        raise UsageError(str(e)) from None
    cache = build_cache(source.files, preprocess, cache_root, workers=workers)
    dataset = make_dataset(source, cache, seed=seed, val_fraction=val_fraction)
    for line in source.skips.lines():
        log(line)
    log(
        f"{source.description}: {len(dataset.train) + len(dataset.val)} of {started} images usable; "
        f"{len(dataset.train)} train, {len(dataset.val)} validation"
    )
    for line in dataset.balance():
        log("  " + line)
    return dataset


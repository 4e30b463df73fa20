"""Labelled image sources, before decoding. Three ways to label a set of images (the first that
matches wins):
  1. `labels.csv` in the data folder: first column the image path relative to the folder, then one
     column per attribute; values 1/0, 1/-1, true/false, yes/no (any case). UTF-8 or UTF-16.
  2. A CelebA-style attribute file (`--labels FILE --images DIR`): first line the count, second
     the attribute names, then `file v1 v2 ...` with 1/-1.
  3. For one attribute, two subfolders `with_<Name>/` and `without_<Name>/`.
Rows that name files outside the data folder, or that do not parse, are skipped and counted.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np

from fadercli.attributes import AttributeSet
from fadercli.errors import InputError
from fadercli.media.formats import PHOTO_SUFFIXES

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
    return (
        bool(parts)
        and not PurePath(relative).is_absolute()
        and not relative.startswith(("/", "\\"))
        and ".." not in parts
    )


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
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())


def _subfolder_source(folder: Path) -> tuple[list[str], list[Path], list[list[int]]] | None:
    subs = {p.name: p for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else {}
    pairs = [n[len("with_") :] for n in subs if n.startswith("with_") and f"without_{n[len('with_') :]}" in subs]
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

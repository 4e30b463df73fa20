"""The decoded-image cache: images decoded, cropped and resized once (through media's gate) into one
raw uint8 array file, keyed on the image files and the preprocessing settings, so RAM stays flat
whatever the dataset size and epochs decode no image files. Rows are read with positioned reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE_VERSION = 2


CROPS = ("none", "celeba")


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
        from fadercli.media.images import read_image

        face = align_faces(read_image(path), size=prep.img_size, choice="largest", model=detector)[0]
        return np.clip(np.rint(face.crop * 255), 0, 255).astype(np.uint8)
    from PIL import ImageOps

    from fadercli.media.images import centre_square, open_image, resize_square

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


def _fill_cache(
    tmp: Path,
    folder: Path,
    files: list[Path],
    prep: Preprocess,
    workers: int,
    progress: Callable[[int, int], None] | None,
) -> None:
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

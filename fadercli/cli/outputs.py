"""Where `fader edit`'s results go, the rules both engines follow (the local one in edit.py, Ray's in
scale.py): one destination, no two inputs on one output, every output problem found before any work,
and the values the records report."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from fadercli.errors import OutputError, UsageError


def one_destination(output, out_dir, in_place: bool, count: int) -> None:
    """One of -o, --out-dir and --in-place, and -o for one input."""
    if sum(map(bool, (output, out_dir, in_place))) > 1:
        raise UsageError("give only one of -o, --out-dir and --in-place")
    if output is not None and count > 1:
        raise UsageError(f"-o names one output file, but {count} images were given: use --out-dir")


def distinct(targets: Mapping, where: Callable = lambda target: target) -> None:
    """No two inputs written to the same output (`where` says when two targets are the same)."""
    claimed: dict = {}
    for source, target in targets.items():
        key = where(target)
        if key in claimed:
            raise UsageError(f"{claimed[key]} and {source} would both be written to {target}")
        claimed[key] = source


def check_targets(targets: dict[Path, Path], out_dir: Path | None, in_place: bool, force: bool) -> None:
    """Every problem of the local output files, found before any work is done (after the usage
    errors: exit 2 comes first)."""
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out-dir {out_dir} is a file")
    inputs = {p.resolve() for p in targets}
    for target in targets.values():
        where = target.resolve()
        if not in_place and where in inputs:
            raise OutputError(f"{target} is an input: use --in-place to overwrite inputs")
        if target.exists() and not (force or in_place):
            raise OutputError(f"{target} exists (use --force to overwrite)")
        if target.is_dir():
            raise OutputError(f"{target} is a folder")
        _check_writable(target.parent, target, create=out_dir is not None)


def canonical(fader, given: dict[str, float]) -> dict[str, float]:
    """`--set`/`--shift` values under the names the models spell them, as the records give them."""
    return {fader.owner(name)[1]: value for name, value in given.items()}


def _check_writable(folder: Path, target: Path, create: bool) -> None:
    """The folder must be a writable folder; one to be created (`create`), its nearest existing parent."""
    existing = folder
    while create and not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write {target}: no such folder {folder}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {target}: {existing} is not writable")

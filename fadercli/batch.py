"""Whole data sets edited on Ray Data (the `ray` extra): `fader edit INPUT... --engine ray`, or your own
pipeline with `FaderEditor` as the callable class of `Dataset.map_batches`.

    import ray
    from fadercli.batch import FaderEditor

    rows = [{"input": "s3://bucket/faces/0001.jpg", "output": "s3://bucket/glasses/0001_fader.jpg"}, ...]
    ds = ray.data.from_items(rows).map_batches(
        FaderEditor,
        fn_constructor_kwargs={"models": ["hf://alice/glasses"], "values": {"Eyeglasses": 1.0}},
        batch_size=16, compute=ray.data.ActorPoolStrategy(size=4), num_cpus=1,
    )
    for row in ds.iter_rows(): ...   # input, output, faces (JSON), seconds, error, exit_code

Each actor loads its Fader once (and fetches the face detector once) and sets its own torch threads.
It reads each input with fader's own decoder (the same gate as `fader edit`: formats, pixel limit,
EXIF orientation, 16-bit), edits the faces of a whole batch together and writes each result as
`fader edit` writes it, to a local path or any URI pyarrow's file systems open (s3://, gs://,
file://, ...). An input that fails gives its row an error and an exit code; it never fails its
batch. A failure that is no one input's (the model or the face detector cannot be had) gives every
row the actor has not written its error, so that whoever reads the rows can stop at the first.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from fadercli import say
from fadercli.errors import FaderError, InputError, OutputError, UsageError, import_extra, reason

MAX_INPUT_BYTES = 512 * 2**20  # an image file larger than this is not read (a local file's gate is the decoder's)


def is_uri(name: str) -> bool:
    """An object-store or file URI (s3://, gs://, file://, ...), as opposed to a local path."""
    scheme, sep, _ = name.partition("://")
    return bool(sep) and scheme.isalnum() and len(scheme) > 1


def _filesystem(uri: str):
    from pyarrow import fs

    try:
        return fs.FileSystem.from_uri(uri)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for unknown schemes and bad URIs
        raise InputError(f"{uri}: {type(e).__name__}: {reason(e)}") from None


def list_uri(uri: str, extensions: set[str]) -> list[str]:
    """The image files at a URI: the object itself, or those directly inside a folder (sorted)."""
    filesystem, path = _filesystem(uri)
    from pyarrow import fs

    info = filesystem.get_file_info(path)
    if info.type == fs.FileType.File:
        return [uri]
    if info.type != fs.FileType.Directory:
        raise InputError(f"{uri}: no such file or folder")
    scheme = uri.split("://", 1)[0]
    found = filesystem.get_file_info(fs.FileSelector(path, recursive=False))
    return sorted(
        f"{scheme}://{f.path}"
        for f in found
        if f.type == fs.FileType.File
        and not f.base_name.startswith(".")
        and Path(f.base_name).suffix.lower() in extensions
    )


def exists(target: str) -> bool:
    if not is_uri(target):
        return Path(target).exists()
    from pyarrow import fs

    filesystem, path = _filesystem(target)
    return filesystem.get_file_info(path).type != fs.FileType.NotFound


def make_folder(folder: str) -> None:
    """Create an output folder and its parents where the file system has folders (a local path,
    file://, hdfs://); an object store's (s3://, gs://) need none, and are left as they are."""
    if not is_uri(folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        return
    filesystem, path = _filesystem(folder)
    if filesystem.type_name in ("local", "hdfs"):
        try:
            filesystem.create_dir(path, recursive=True)
        except OSError as e:
            raise OutputError(f"cannot create {folder}: {reason(e)}") from None


def _read(source: str, limits):
    from fadercli.media.images import decode_image, read_image

    if not is_uri(source):
        return read_image(source, limits=limits)
    filesystem, path = _filesystem(source)
    try:
        with filesystem.open_input_stream(path) as f:
            data = f.read(MAX_INPUT_BYTES + 1)
    except OSError as e:
        raise InputError(f"{source}: cannot read it ({reason(e)})") from None
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(f"{source}: larger than {MAX_INPUT_BYTES >> 20} MB, not read")
    return decode_image(data, source, limits=limits)


def _write(photo, target: str, file_format: str | None) -> None:
    """As `fader edit` writes: a local file atomically; an object whole when the stream closes."""
    from fadercli.media.writing import encode_image, output_format_of, save_image

    if not is_uri(target):
        save_image(photo, target, format=file_format)
        return
    data = encode_image(photo, output_format_of(target, photo, file_format))
    filesystem, path = _filesystem(target)
    try:
        with filesystem.open_output_stream(path) as f:
            f.write(data)
    except OSError as e:
        raise OutputError(f"cannot write {target}: {reason(e)}") from None


class FaderEditor:
    """The callable class for `ray.data.Dataset.map_batches`: batches with the columns `input` and
    `output` (paths or URIs) in, the same rows out with `faces` (a JSON list, as `fader edit --json`
    gives it), `seconds`, `error` ("" when it went well) and `exit_code` (0, or `fader edit`'s code).

    `models` are `--model` specs (registry names, files, run folders, hf://OWNER/NAME); `values` and
    `shift` are `--set` and `--shift`; `file_format` is `--format`; `precision` is `--precision`;
    `threads` the torch threads of this actor (actors x threads should fit the node's cores)."""

    def __init__(
        self,
        models: Sequence[str] | None = None,
        values: Mapping[str, float] | None = None,
        shift: Mapping[str, float] | None = None,
        *,
        file_format: str | None = None,
        face: str | int = "all",
        align: bool = True,
        threshold: float | None = None,
        device: str = "cpu",
        precision: str = "auto",
        threads: int | None = None,
        batch_size: int = 16,
        max_megapixels: float | None = None,
        max_faces: int | None = None,
    ):
        import torch

        from fadercli.api import Fader
        from fadercli.faces import detector_model
        from fadercli.limits import Limits

        if threads:
            torch.set_num_threads(threads)
        self.values, self.shift = dict(values or {}), dict(shift or {})
        self.face, self.align, self.file_format = face, align, file_format
        self.failure: FaderError | None = None  # why this actor cannot edit at all: each batch's rows say it
        try:
            self.fader = Fader.load(
                list(models or []) or None,
                attributes=[*self.values, *self.shift],
                device=device,
                precision=precision,
                batch_size=batch_size,
                threshold=threshold,
                limits=Limits.of(max_megapixels, max_faces),
            )
            self.fader.plan(self.values, self.shift)
            if align:
                detector_model()  # fetched now, once, rather than tried again photo by photo
        except FaderError as e:
            self.failure = e

    def __call__(self, batch: Mapping[str, Sequence]) -> dict[str, list]:
        rows = {
            str(source): {"output": str(target), "error": "", "exit_code": 0, "faces": "[]", "seconds": 0.0}
            for source, target in zip(batch["input"], batch["output"])
        }
        written: set[str] = set()
        failure = self.failure
        if failure is None:
            try:
                self._edit(rows, written)
            except FaderError as e:  # no one input's: _edit puts those in their rows
                failure = e
        if failure is not None:  # every row not written says it
            for source, row in rows.items():
                if source not in written and not row["error"]:
                    row.update(error=str(failure), exit_code=failure.exit_code)
        columns = ("output", "faces", "seconds", "error", "exit_code")
        return {"input": list(rows), **{c: [row[c] for row in rows.values()] for c in columns}}

    def _edit(self, rows: dict[str, dict], written: set[str]) -> None:
        """Read, edit and write the batch's inputs, each failure of one input in its row."""
        photos = {}
        for source in rows:
            started = time.perf_counter()
            try:
                photos[source] = _read(source, self.fader.limits)
            except FaderError as e:
                rows[source].update(error=str(e), exit_code=e.exit_code)
            rows[source]["seconds"] = time.perf_counter() - started
        by_id = {id(photo): source for source, photo in photos.items()}

        def failed(image, error: FaderError) -> None:
            source, message = by_id[id(image)], str(error)
            message = message if source in message else f"{source}: {message.removeprefix('the photo: ')}"
            rows[source].update(error=message, exit_code=error.exit_code)

        results = self.fader.edit_many(
            list(photos.values()), self.values, self.shift, face=self.face, align=self.align, on_error=failed
        )
        for result in results:
            source = by_id[id(result.source)]
            row = rows[source]
            started = time.perf_counter()
            try:
                _write(result.image, row["output"], self.file_format)
            except FaderError as e:
                row.update(error=str(e), exit_code=e.exit_code)
                continue
            row["faces"] = json.dumps([f.to_dict() for f in result.faces])
            row["seconds"] += result.seconds + time.perf_counter() - started
            written.add(source)


def edit_on_ray(
    pairs: Sequence[tuple[str, str]],
    editor: dict,
    *,
    address: str | None = None,
    actors: int | None = None,
    threads_per_actor: int = 1,
    batch_size: int = 16,
) -> Iterator[dict]:
    """Edit (input, output) pairs on Ray Data with FaderEditor(**editor); yield each row, in input
    order, as it is done. `address`: None starts Ray on this machine, "auto" or HOST:PORT joins a
    running cluster. `actors` defaults to the cluster's CPUs divided by `threads_per_actor`.

    Ray's and Ray Data's own notes and progress stay in Ray's log files (errors still reach stderr);
    a line on the `fadercli` logger (INFO) says where those are, and the rows are the progress."""
    import_extra("ray", "ray")
    import ray
    import ray.data

    if threads_per_actor < 1:
        raise UsageError(f"--threads-per-actor must be at least 1, got {threads_per_actor}")
    if actors is not None and actors < 1:
        raise UsageError(f"--actors must be at least 1, got {actors}")
    started = not ray.is_initialized()
    logs = None
    if started:
        try:
            context = ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UsageError(f"cannot reach the Ray cluster at {address}: {reason(e)}") from None
        session = context.address_info.get("session_dir")
        logs = os.path.join(session, "logs") if session else None
    try:
        yield from _rows(ray, pairs, editor, actors, threads_per_actor, batch_size, logs)
    finally:
        if started:
            ray.shutdown()


def _rows(ray, pairs, editor: dict, actors: int | None, threads_per_actor: int, batch_size: int, logs: str | None):
    """The job itself: the pairs as a dataset, FaderEditor actors over it, the rows streamed back."""
    cpus = int(ray.cluster_resources().get("CPU", 1))
    actors = actors or max(1, cpus // threads_per_actor)
    say(
        f"ray: {actors} actor(s) x {threads_per_actor} thread(s), {cpus} CPU(s)"
        + (f"; Ray's logs: {logs}" if logs else "")
    )
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows come back in input order, as fader edit prints them
    context.enable_progress_bars = False  # the caller counts the rows
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notes and progress lines stay in its log file
    with warnings.catch_warnings():
        # Ray Data 2.60 takes max_restarts only among its **ray_remote_args, which it calls deprecated
        warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
        dataset = ray.data.from_items([{"input": s, "output": t} for s, t in pairs]).map_batches(
            FaderEditor,
            fn_constructor_kwargs={**editor, "threads": threads_per_actor, "batch_size": batch_size},
            batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=threads_per_actor,
            batch_format="numpy",
            # No restarts: Ray Data's default brings a dead actor back and tries its batch again without
            # end (a batch that killed it, by memory, would again), and warns on stderr for every actor
            # it could restart (their constructor's arguments are in the object store).
            max_restarts=0,
        )
    for row in dataset.iter_rows():
        yield {**row, "exit_code": int(row["exit_code"]), "seconds": float(row["seconds"])}


__all__ = ["FaderEditor", "edit_on_ray", "exists", "is_uri", "list_uri", "make_folder"]

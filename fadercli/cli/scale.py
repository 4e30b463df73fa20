"""`fader edit INPUT... --engine ray`: the same edit over a Ray cluster (fadercli.batch), with the
same output names, checks, records and exit codes as the local engine."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import typer

from fadercli import say
from fadercli.cli.outputs import canonical, check_targets, distinct, one_destination
from fadercli.cli.shared import Failures
from fadercli.errors import InputError, OutputError, UsageError, from_exit_code, import_extra


def edit_on_ray(
    inputs: list[str],
    *,
    output: Path | None,
    out_dir: str | None,
    force: bool,
    file_format: str | None,
    extension: str | None,
    editor: dict,
    as_json: bool,
    quiet: bool,
    address: str | None,
    actors: int | None,
    threads_per_actor: int,
    batch_size: int,
) -> None:
    from fadercli.api import Fader
    from fadercli.batch import edit_on_ray as run
    from fadercli.batch import exists, is_uri, make_folder
    from fadercli.faces import detector_model
    from fadercli.progress import progress_bar

    import_extra("ray", "ray")  # before anything is loaded
    sources = _sources(inputs)
    pairs = _pairs(sources, output, out_dir, extension)
    values, shifts = editor["values"], editor["shift"]
    fader = Fader.load(editor["models"], attributes=[*values, *shifts], device="cpu", precision=editor["precision"])
    fader.plan(values, shifts)  # names and values checked before any work, as the local engine does
    local = {Path(s): Path(t) for s, t in pairs if not is_uri(t)}
    check_targets(local, None if out_dir is None or is_uri(out_dir) else Path(out_dir), False, force)
    for _, target in pairs:
        if is_uri(target) and not force and exists(target):
            raise OutputError(f"{target} exists (use --force to overwrite)")
    if editor["align"]:
        detector_model()  # fetched here, once: the actors on this machine find it in the cache
    if out_dir is not None:
        make_folder(out_dir)
    requested = {"set": canonical(fader, values), "shift": canonical(fader, shifts)}
    models = [m.loaded.source for m in fader.models]
    failures, written = Failures(), 0
    job = run(
        pairs,
        {**editor, "file_format": file_format},
        address=address,
        actors=actors,
        threads_per_actor=threads_per_actor,
        batch_size=batch_size,
    )
    with closing(job) as rows, progress_bar(len(pairs) > 1 and not quiet) as bar:  # a stop ends Ray at once
        task = bar.add_task("editing", total=len(pairs))
        for row in rows:
            bar.advance(task)
            if row["error"]:  # an actor's failure that is no one input's stops the job here, once
                failures.report(from_exit_code(row["error"], row["exit_code"]))
                continue
            written += 1
            if as_json:
                record = {
                    "input": row["input"],
                    "output": row["output"],
                    "faces": json.loads(row["faces"]),
                    "values": requested,
                    "models": models,
                    "seconds": round(row["seconds"], 3),
                }
                typer.echo(json.dumps(record))
            else:
                typer.echo(row["output"])
    if len(pairs) > 1:
        say(f"{written} of {len(pairs)} image(s) edited")
    failures.exit()


def _sources(inputs: list[str]) -> list[str]:
    """Local files, folders and globs as `fader edit` expands them; URIs: an object, or the images
    directly in a folder. Clips are the local engine's."""
    from fadercli.batch import is_uri, list_uri
    from fadercli.media.formats import PHOTO_SUFFIXES, expand_inputs, is_video

    found: list[str] = []
    for item in inputs:
        if is_uri(item):
            found += list_uri(item, set(PHOTO_SUFFIXES))
        else:
            paths = expand_inputs([item], clips=True)
            clips = [p for p in paths if is_video(p)]
            if clips:
                raise UsageError(f"{clips[0]}: --engine ray edits images; edit clips with the local engine")
            found += [str(p) for p in paths]
    found = list(dict.fromkeys(found))
    if not found:
        raise InputError(f"no images in {' '.join(inputs)}")
    return found


def _pairs(
    sources: list[str], output: Path | None, out_dir: str | None, extension: str | None
) -> list[tuple[str, str]]:
    """(input, output) for each source, named as the local engine names them."""
    from fadercli.batch import is_uri
    from fadercli.media.formats import edited_name

    one_destination(output, out_dir, False, len(sources))
    if output is not None:
        return [(sources[0], str(output))]
    pairs = []
    for source in sources:
        name = edited_name(source.rsplit("/", 1)[-1], extension)
        if out_dir is not None:
            pairs.append((source, f"{out_dir.rstrip('/')}/{name}"))
        elif is_uri(source):
            raise UsageError(f"{source}: give --out-dir (a folder or a URI) for inputs that are URIs")
        else:
            pairs.append((source, str(Path(source).with_name(name))))
    distinct(dict(pairs))
    return pairs

"""`fader export`, `fader push`, `fader plot`: a trained run shared on the Hub, and its curves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fadercli.cli.shared import choice, plain

ExportFormat = choice("ExportFormat", ("hub", "onnx"))
Run = Annotated[Path, typer.Argument(help="A run folder written by `fader train`.", show_default=False)]
License = Annotated[
    str,
    typer.Option(
        "--license",
        help="The licence in the card's metadata (a Hub licence id such as mit or cc-by-nc-4.0; other if yours"
        " depends on your data).",
    ),
]


def export(
    model: Annotated[
        str,
        typer.Argument(
            help="--format hub: a run folder written by `fader train`. --format onnx: any --model spec (a run"
            " folder, a .safetensors file, a registry name, hf://OWNER/NAME[@REVISION], ...).",
            show_default=False,
            metavar="MODEL",
        ),
    ],
    dest: Annotated[
        Optional[Path],
        typer.Argument(
            help="The folder to write: new or empty for hub; for onnx, default: beside a local model's weights.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="hub: a Hub-ready folder (weights, model card, preview); onnx: the model as ONNX graphs that"
            " onnxruntime runs anywhere, without PyTorch (the `onnx` extra; docs/models.md).",
            case_sensitive=False,
        ),
    ] = ExportFormat["hub"],
    repo: Annotated[
        Optional[str], typer.Option("--repo", help="OWNER/NAME the card's usage lines name.", show_default=False)
    ] = None,
    license: License = "other",
    force: Annotated[
        bool, typer.Option("--force", help="Write into a folder that is not empty; overwrite ONNX files.")
    ] = False,
) -> None:
    """Write a model for sharing: a Hub-ready folder (the weights, any ONNX export beside them, the model card with the run's evaluation, a preview image), or with --format onnx the model as ONNX graphs; prints the paths written."""
    from fadercli.errors import UsageError

    if plain(fmt) == "onnx":
        from fadercli.share.onnx_export import export_onnx

        if repo is not None or license != "other":
            raise UsageError("--repo and --license are for the Hub folder (--format hub)")
        written = export_onnx(model, dest, force=force)
    else:
        from fadercli.share.export import export_run

        if dest is None:
            raise UsageError("give the folder to write: fader export RUN DIR")
        written = export_run(Path(model), dest, repo_id=repo, license=license, force=force)
    for path in written:
        typer.echo(str(path))


def push(
    run: Run,
    repo: Annotated[str, typer.Argument(help="OWNER/NAME of the model repository (created if missing).")],
    private: Annotated[bool, typer.Option("--private", help="Create the repository private.")] = False,
    revision: Annotated[
        Optional[str],
        typer.Option("--revision", help="A branch to commit to (created if missing).", show_default=False),
    ] = None,
    license: License = "other",
) -> None:
    """Upload a run to the Hugging Face Hub as one commit (what `fader export` writes); prints the commit's URL.

    The token comes from HF_TOKEN or `hf auth login`. Then anyone can edit with `--model hf://OWNER/NAME`.
    """
    from fadercli import say
    from fadercli.share.export import push_run

    url = push_run(run, repo, private=private, revision=revision, license=license)
    say(f"pushed {run} to hf://{repo}{'@' + revision if revision else ''}")
    typer.echo(url)


def plot(
    run: Run,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="The PNG to write \\[default: RUN/curves.png].", show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing -o file.")] = False,
) -> None:
    """Draw a run's training curves: losses, the discriminator's accuracy, λ, the learning rate, PSNR and swap accuracy per direction, against steps and minutes."""
    from fadercli.errors import OutputError
    from fadercli.train.plot import save_curves

    if output is not None and output.exists() and not force:
        raise OutputError(f"{output} exists (use --force to overwrite)")
    typer.echo(str(save_curves(run, output)))

"""`fader train`, `fader eval`: training on a user's labelled images, and scoring a run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

DATA = "Data"
RUN = "Run"
MODEL = "Model (FACTS.md names; default by image size)"
OPTIM = "Optimisation"


def train(
    data: Annotated[Optional[Path], typer.Argument(help="Folder of labelled images (formats below).", show_default=False)] = None,
    labels: Annotated[Optional[Path], typer.Option(help="CelebA-style attribute file (with --images).", rich_help_panel=DATA)] = None,
    images: Annotated[Optional[Path], typer.Option(help="Image folder for --labels.", rich_help_panel=DATA)] = None,
    crop: Annotated[str, typer.Option(help="none, or celeba: the release's crop of CelebA aligned images (implies --no-align).", rich_help_panel=DATA)] = "none",
    attr: Annotated[Optional[list[str]], typer.Option("--attr", help="Attribute to learn (repeatable; default all).", rich_help_panel=DATA)] = None,
    align: Annotated[Optional[bool], typer.Option("--align/--no-align", help="Find and align the largest face of each photo as `fader edit` does (photos without a face are skipped), or take images as already aligned crops. [default: --align, or --no-align with --crop celeba]", show_default=False, rich_help_panel=DATA)] = None,
    img_size: Annotated[int, typer.Option(help="Model resolution: 32, 64, 128 or 256.", rich_help_panel=DATA)] = 64,
    val_fraction: Annotated[float, typer.Option(help="Share of images held out for validation.", rich_help_panel=DATA)] = 0.05,
    out: Annotated[Optional[Path], typer.Option(help="Run folder [default: runs/<data name>].", rich_help_panel=RUN)] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its checkpoint.", rich_help_panel=RUN)] = False,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many steps.", rich_help_panel=RUN)] = None,
    max_minutes: Annotated[Optional[float], typer.Option(help="Stop cleanly after this much wall time (data preparation included) and save.", rich_help_panel=RUN)] = None,
    batch_size: Annotated[int, typer.Option(help="Images per step (over all processes).", rich_help_panel=RUN)] = 32,
    seed: Annotated[int, typer.Option(help="Seed for the split, data order and weights.", rich_help_panel=RUN)] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.", rich_help_panel=RUN)] = "auto",
    workers: Annotated[int, typer.Option(help="Processes decoding images into the cache.", rich_help_panel=RUN)] = 2,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps (0: every --checkpoint-minutes).", rich_help_panel=RUN)] = 0,
    checkpoint_minutes: Annotated[float, typer.Option(help="Minutes between checkpoints.", rich_help_panel=RUN)] = 10.0,
    init_fm: Annotated[Optional[int], typer.Option(help="Feature maps of the first conv block.", rich_help_panel=MODEL)] = None,
    max_fm: Annotated[Optional[int], typer.Option(help="Cap on feature maps.", rich_help_panel=MODEL)] = None,
    n_layers: Annotated[Optional[int], typer.Option(help="Encoder/decoder blocks.", rich_help_panel=MODEL)] = None,
    n_skip: Annotated[int, typer.Option(help="Encoder-to-decoder skip connections.", rich_help_panel=MODEL)] = 0,
    upsample: Annotated[str, typer.Option(help="convtranspose, upsampling or pixelshuffle.", rich_help_panel=MODEL)] = "convtranspose",
    instance_norm: Annotated[bool, typer.Option(help="Instance norm instead of batch norm.", rich_help_panel=MODEL)] = False,
    dec_dropout: Annotated[float, typer.Option(help="Decoder dropout.", rich_help_panel=MODEL)] = 0.0,
    hid_dim: Annotated[int, typer.Option(help="Latent discriminator hidden units.", rich_help_panel=MODEL)] = 512,
    lat_dis_dropout: Annotated[float, typer.Option(help="Latent discriminator dropout.", rich_help_panel=MODEL)] = 0.3,
    lr: Annotated[Optional[float], typer.Option(help="Autoencoder learning rate (Adam).", rich_help_panel=OPTIM)] = None,
    dis_lr: Annotated[Optional[float], typer.Option(help="Latent discriminator learning rate.", rich_help_panel=OPTIM)] = None,
    lr_schedule: Annotated[Optional[str], typer.Option(help="constant, or cosine: down to --lr-final times the rate by the end.", rich_help_panel=OPTIM)] = None,
    lr_final: Annotated[float, typer.Option(help="Where the cosine schedule ends, as a share of the learning rate.", rich_help_panel=OPTIM)] = 0.1,
    beta1: Annotated[float, typer.Option(help="Adam beta1.", rich_help_panel=OPTIM)] = 0.5,
    beta2: Annotated[float, typer.Option(help="Adam beta2.", rich_help_panel=OPTIM)] = 0.999,
    clip_grad_norm: Annotated[float, typer.Option(help="Gradient-norm clipping (0: off).", rich_help_panel=OPTIM)] = 5.0,
    lambda_ae: Annotated[float, typer.Option(help="Reconstruction weight.", rich_help_panel=OPTIM)] = 1.0,
    lambda_lat_dis: Annotated[Optional[float], typer.Option(help="Final weight of the adversarial term.", rich_help_panel=OPTIM)] = None,
    lambda_ramp: Annotated[Optional[float], typer.Option(help="Share of the run over which that weight rises from 0.", rich_help_panel=OPTIM)] = None,
    lambda_clf: Annotated[Optional[float], typer.Option(help="Weight of the classifier loss on decodes with random attributes (0: off).", rich_help_panel=OPTIM)] = None,
    clf_share: Annotated[float, typer.Option(help="Share of each batch the classifier loss decodes with other attributes.", rich_help_panel=OPTIM)] = 0.25,
    dis_steps: Annotated[int, typer.Option(help="Latent discriminator updates per autoencoder step.", rich_help_panel=OPTIM)] = 1,
    clf_steps: Annotated[Optional[int], typer.Option(help="Steps to train the evaluation (and guide) classifier.", rich_help_panel=OPTIM)] = None,
    clf_budget: Annotated[float, typer.Option(help="With --max-minutes: the classifiers' share of the time at most (fewer steps if needed).", rich_help_panel=OPTIM)] = 0.2,
    no_flip: Annotated[bool, typer.Option("--no-flip", help="No random horizontal flips.", rich_help_panel=OPTIM)] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final scores as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or messages.")] = False,
) -> None:
    """Train a Fader Network on your own labelled face images.

    DATA is one of: a folder with labels.csv (first column the image path relative to the folder, then one column per attribute with 1/0, 1/-1, true/false or yes/no); a CelebA-style attribute file given with --labels FILE --images DIR; or, for one attribute, a folder with two subfolders with_<Name>/ and without_<Name>/.
    """
    started = time.monotonic()
    from fadercli.train import TrainConfig, run_training

    overrides = {
        "lr": lr, "dis_lr": dis_lr, "lr_schedule": lr_schedule, "lambda_lat_dis": lambda_lat_dis, "lambda_ramp": lambda_ramp,
        "lambda_clf": lambda_clf, "clf_steps": clf_steps, "init_fm": init_fm, "max_fm": max_fm, "n_layers": n_layers,
    }
    config = TrainConfig(
        img_size=img_size, batch_size=batch_size, max_steps=max_steps, max_minutes=max_minutes, seed=seed,
        val_fraction=val_fraction, n_skip=n_skip, upsample=upsample, instance_norm=instance_norm,
        dec_dropout=dec_dropout, hid_dim=hid_dim, lat_dis_dropout=lat_dis_dropout, beta1=beta1, beta2=beta2,
        clip_grad_norm=clip_grad_norm, lambda_ae=lambda_ae, clf_share=clf_share, clf_budget=clf_budget,
        dis_steps=dis_steps, lr_final=lr_final, flip=not no_flip, checkpoint_every=checkpoint_every,
        checkpoint_minutes=checkpoint_minutes, **{k: v for k, v in overrides.items() if v is not None},
    )
    align = crop == "none" if align is None else align
    data_args = {"data": data, "labels": labels, "images": images, "crop": crop, "align": align, "attributes": attr}
    out = out or Path("runs") / (data or images or Path("fader")).resolve().name
    result = run_training(
        data_args, config, out, device_name=device, resume=resume, workers=workers, quiet=quiet, started=started
    )
    _report(result, out, as_json)


def evaluate(
    run: Annotated[Path, typer.Argument(help="A run folder written by `fader train`.")],
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Recompute swap accuracy and reconstruction PSNR of a run on its validation faces."""
    from fadercli.train import evaluate_run

    _report(evaluate_run(run, device_name=device), run, as_json)


def _report(result: dict, out: Path, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"run": str(out), **result}, indent=2))
        return
    if not result:
        return
    from fadercli.evaluate import summary_lines

    typer.echo(f"run: {out}   model: {out / 'model.safetensors'}")
    if "steps" in result:
        done = "completed" if result["progress"] >= 1 else f"at {result['progress']:.0%}"
        share = f" ({result['seconds'] / result['wall_seconds']:.0%} of the run's {result['wall_seconds'] / 60:.1f} min)" \
            if result.get("wall_seconds") else ""
        typer.echo(f"trained {result['steps']} steps in {result['seconds'] / 60:.1f} min{share}; schedules {done} "
                   f"(final learning rate {result['final_lr']:.3g})")
    for line in summary_lines(result):
        typer.echo(line)

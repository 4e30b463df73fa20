"""A run's curves as one picture (`fader plot`, the page of `fader serve`): the losses, the latent
discriminator's accuracy, λ, the learning rate, reconstruction PSNR and swap accuracy per
direction, against steps (bottom axis) and training minutes (top axis, where the run recorded them).
Needs matplotlib (the `plot` extra); drawn on a Figure of its own, so no GUI backend is involved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fadercli.errors import OutputError, import_extra
from fadercli.files import atomic_path
from fadercli.train.metrics import Curves, read_metrics

# (title, the series drawn, y label, log scale)
PANELS = (
    ("Losses", "loss/", "loss", True),
    ("Latent discriminator accuracy", "discriminator/", "accuracy (0.5 = it cannot tell)", False),
    ("λ (adversarial weight)", "schedule/lambda", "λ", False),
    ("Learning rate", "schedule/lr", "learning rate", True),
    ("Reconstruction PSNR (validation)", "eval/psnr", "dB", False),
    ("Swap accuracy per direction (validation)", "eval/swap/", "share of edits", False),
)


def draw(curves: Curves, title: str):
    """The figure (matplotlib.figure.Figure): one panel per PANELS entry, each line labelled with its
    series name; evaluations, a few points, are drawn as markers."""
    import_extra("matplotlib", "plot")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15, 8.5), layout="constrained")
    figure.suptitle(title, fontsize=14)
    axes = figure.subplots(2, 3)
    last = max((step for series in curves.series.values() for step, _ in series), default=1)
    for ax, (heading, prefix, ylabel, log) in zip(axes.flat, PANELS):
        ax.set_xlim(0, max(last, 1) * 1.03)  # one step scale in every panel: evaluations sit where they were made
        names = curves.names(prefix)
        ax.set_title(heading)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        for name in names:
            steps, values = zip(*curves.series[name])
            evaluation = name.startswith("eval/")
            ax.plot(steps, values, "o-" if evaluation else "-", label=_label(name, prefix), markersize=5)
        if not names:
            ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", va="center", color="grey")
            continue
        if log and all(v > 0 for name in names for _, v in curves.series[name]):
            ax.set_yscale("log")
        if prefix in ("eval/swap/", "discriminator/"):
            ax.set_ylim(-0.02, 1.02)
        if len(names) > 1:
            ax.legend(fontsize=8, loc="best")
        _minutes_axis(ax, curves)
    return figure


def _label(name: str, prefix: str) -> str:
    """A line's legend entry: the series name without its panel's prefix ("Smiling/adding")."""
    return name[len(prefix) :] if prefix.endswith("/") else name.rsplit("/", 1)[-1]


def _minutes_axis(ax, curves: Curves) -> None:
    """Training minutes along the top, interpolated from the steps that recorded them."""
    if len(curves.minutes) < 2:
        return
    steps, minutes = map(np.asarray, zip(*sorted(curves.minutes)))
    if np.any(np.diff(steps) <= 0) or np.any(np.diff(minutes) < 0):
        return  # a resumed run logged some steps twice: no single mapping
    top = ax.secondary_xaxis(
        "top", functions=(lambda s: np.interp(s, steps, minutes), lambda m: np.interp(m, minutes, steps))
    )
    top.set_xlabel("training minutes")


def figure_for(run: Path):
    """The figure of a run folder's metrics.jsonl, titled with the folder's name and its last step."""
    curves = read_metrics(run)
    steps = max((s for series in curves.series.values() for s, _ in series), default=0)
    return draw(curves, f"{Path(run).resolve().name}: {steps:,} steps")


def save_curves(run: Path, output: Path | None = None) -> Path:
    """Draw a run's metrics.jsonl into a PNG (default RUN/curves.png); the path written."""
    run = Path(run)
    output = Path(output) if output is not None else run / "curves.png"
    if output.suffix.lower() != ".png":
        raise OutputError(f"{output}: fader plot writes PNG (give a name ending in .png)")
    figure = figure_for(run)
    with atomic_path(output) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return output

"""A run's numbers over time: metrics.jsonl written during training (and TensorBoard event files
with `--log tensorboard`), and read back as named series for `fader plot`, the page and the card.

One naming serves all of them: `scalars()` turns a metrics.jsonl entry into `group/name` values,
the tags TensorBoard shows and the series the plot draws.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fadercli.errors import InputError, import_extra

# metrics.jsonl's step fields -> the series they are drawn and logged as.
STEP_SERIES = {
    "rec_loss": "loss/reconstruction",
    "dis_loss": "loss/discriminator",
    "adv_loss": "loss/adversarial",
    "clf_loss": "loss/classifier",
    "dis_accuracy": "discriminator/accuracy",
    "lambda": "schedule/lambda",
    "lr": "schedule/lr",
    "images_per_s": "speed/images_per_s",
}
MAX_METRICS_BYTES = 256 * 2**20  # a run logs about 200 bytes every 50 steps


def scalars(entry: dict) -> dict[str, float]:
    """A metrics.jsonl entry as named values: training steps, or an evaluation's PSNR, swap
    accuracy per attribute and direction, and its classifier's accuracy on clean faces."""
    if isinstance(entry.get("eval"), dict):
        report = entry["eval"]
        values = {"eval/psnr": report.get("psnr")}
        for attribute, directions in (report.get("swap_accuracy") or {}).items():
            for direction, value in (directions or {}).items():
                values[f"eval/swap/{attribute}/{direction}"] = value
        for attribute, value in (report.get("classifier_accuracy") or {}).items():
            values[f"eval/classifier_accuracy/{attribute}"] = value
    else:
        values = {series: entry.get(key) for key, series in STEP_SERIES.items()}
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


@dataclass
class Curves:
    """A run's series: name -> [(step, value)], and the training minutes at the steps that recorded them."""

    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    minutes: list[tuple[int, float]] = field(default_factory=list)

    def names(self, prefix: str) -> list[str]:
        return sorted(name for name in self.series if name.startswith(prefix))


def entries(run: Path) -> Iterator[dict]:
    """The entries of a run folder's metrics.jsonl; lines that are not JSON objects are skipped (a run
    cut off mid-write leaves half a line)."""
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        raise InputError(f"{run}: no metrics.jsonl (not a training run folder?)")
    if path.stat().st_size > MAX_METRICS_BYTES:
        raise InputError(f"{path}: larger than {MAX_METRICS_BYTES >> 20} MB, not a run's metrics")
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                yield entry


def read_metrics(run: Path) -> Curves:
    """A run's metrics.jsonl as Curves. An evaluation without a step (older `fader eval`) counts at the
    last step before it."""
    curves, step = Curves(), 0
    for entry in entries(run):
        if isinstance(entry.get("step"), int):
            step = entry["step"]
        for name, value in scalars(entry).items():
            curves.series.setdefault(name, []).append((step, value))
        if isinstance(entry.get("minutes"), (int, float)):
            curves.minutes.append((step, float(entry["minutes"])))
    return curves


def last_evaluation(run: Path) -> dict | None:
    """The run's latest evaluation entry ({"step", "eval", ...}): the end of training's, or a later
    `fader eval`'s; None if it has none."""
    found = None
    for entry in entries(run):
        if isinstance(entry.get("eval"), dict):
            found = entry
    return found


class Metrics:
    """Step metrics averaged over LOG_EVERY steps, appended to metrics.jsonl (rank 0 only), shown on
    the progress bar, and with `tensorboard` also written as TensorBoard event files in
    RUN/tensorboard."""

    LOG_EVERY = 50

    def __init__(self, out: Path, main: bool, log: Callable[[str], None], tensorboard: bool = False):
        self.path, self.main, self.log = out / "metrics.jsonl", main, log
        self.sums: dict[str, float] = {}  # or 0-d tensors, summed where they are and read every LOG_EVERY steps
        self.n, self.images, self.since = 0, 0, time.monotonic()
        self.last_log = time.monotonic()
        self.writer = None
        if tensorboard and main:
            import_extra("tensorboard", "tensorboard")
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(out / "tensorboard"))

    def record(self, entry: dict) -> None:
        if not self.main:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        if self.writer is not None:
            for name, value in scalars(entry).items():
                self.writer.add_scalar(name, value, global_step=entry.get("step", 0))
            self.writer.flush()

    def add(self, step: int, at: float, minutes: float, metrics: dict, images: int, last: bool, progress, task) -> None:
        schedule = {k: metrics.pop(k) for k in ("lambda", "lr")}  # logged as they are, not averaged
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n, self.images = self.n + 1, self.images + images
        if step % self.LOG_EVERY and not last:
            return
        now = time.monotonic()
        entry = {
            "step": step,
            "progress": round(at, 4),
            "minutes": round(minutes, 3),
            **{k: round(float(v) / self.n, 5) for k, v in self.sums.items()},
            **schedule,
            "images_per_s": round(self.images / (now - self.since), 1),
        }
        self.record(entry)
        info = f"step {step}  rec {entry['rec_loss']:.4f}  dis acc {entry['dis_accuracy']:.2f}  λ {entry['lambda']:.1e}"
        progress.update(task, info=info)
        if not progress.live.is_started and now - self.last_log > 30:
            self.log(f"{at:.0%}  {info}  {entry['images_per_s']} img/s")
            self.last_log = now
        self.sums, self.n, self.images, self.since = {}, 0, 0, now

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

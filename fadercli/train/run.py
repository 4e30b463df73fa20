"""A whole training run: the data prepared, the classifiers, the loop laid over the time budget (Pace)
with checkpoints, previews and metrics, Ctrl-C and --resume, torchrun's processes, the final
evaluation and the summary's warnings; `fader eval` scores a run again.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from fadercli.errors import InputError, ModelError, OutputError, UsageError, import_extra
from fadercli.files import atomic_path
from fadercli.net.model import FaderConfig
from fadercli.progress import progress_bar
from fadercli.train.card import CARD_FILE, write_card
from fadercli.train.config import TrainConfig
from fadercli.train.data import Dataset
from fadercli.train.evaluate import evaluate
from fadercli.train.loop import Distributed, Pace, Trainer, lr_scale
from fadercli.train.metrics import Metrics
from fadercli.weights.checkpoints import load_checkpoint
from fadercli.weights.format import load_model


@dataclass
class TrainResult:
    step: int
    interrupted: bool
    metrics: dict


class _StopFlag:
    """First Ctrl-C: finish the step, checkpoint, stop. A second one stops at once."""

    def __init__(self):
        self.requested = False

    @contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


# Training's lines (progress, evaluation) read as a log of the run: `fader train` shows them bare.
_log = logging.getLogger("fadercli.train").info


def train(
    dataset: Dataset,
    config: TrainConfig,
    out: Path,
    *,
    device: torch.device,
    resume: bool = False,
    dist: Distributed | None = None,
    run_info: dict | None = None,
    started: float | None = None,
    log: Callable[[str], None] = _log,
    show_progress: bool = True,
    on_step: Callable[[int, dict], None] | None = None,
    tensorboard: bool = False,
) -> TrainResult:
    """Train (or resume) a run in `out`. `started` (time.monotonic()) anchors --max-minutes, so
    that data preparation counts against the budget too."""
    dist = dist or Distributed()
    started = time.monotonic() if started is None else started
    out = Path(out)
    trainer = _start(dataset, config, out, device, dist, resume, run_info, log)
    config = trainer.config
    budget = config.max_minutes * 60 if config.max_minutes else math.inf
    reserve = trainer.final_seconds() if math.isfinite(budget) else 0.0  # the final evaluation and saving
    max_steps = config.max_steps or math.inf
    if math.isinf(max_steps) and math.isinf(budget):
        raise UsageError("give --max-steps or --max-minutes")
    pace = Pace(max_steps, started + budget - reserve, trainer.progress, time.monotonic())
    metrics = Metrics(out, dist.main, log, tensorboard=tensorboard)
    try:
        return _finish(trainer, pace, max_steps, metrics, show_progress, on_step, started, log)
    finally:
        metrics.close()


def _finish(
    trainer: Trainer,
    pace: Pace,
    max_steps: float,
    metrics: Metrics,
    show_progress: bool,
    on_step: Callable[[int, dict], None] | None,
    started: float,
    log: Callable[[str], None],
) -> TrainResult:
    """The steps, then the final evaluation recorded and the model saved with it."""
    config, dist = trainer.config, trainer.dist
    progress = progress_bar(show_progress and dist.main, info=True, percent=True)
    if _loop(trainer, pace, max_steps, metrics, progress, on_step):
        trainer.save()
        log(f"stopped at step {trainer.step}; checkpoint saved: continue with --resume")
        return TrainResult(trainer.step, True, {})
    trainer.save()  # the weights are safe before the evaluation, which can take a while
    trainer.preview()
    result = trainer.evaluate() if dist.main else {}
    if dist.main:
        result["warnings"] = result["warnings"] + training_warnings(
            trainer.step, trainer.progress, config.img_size, result
        )
        metrics.record({"step": trainer.step, "minutes": round(trainer.elapsed / 60, 3), "eval": result})
        trainer.save_model(result)
        write_card(trainer.out, trainer.out / CARD_FILE)
        result = {
            **result,
            "steps": trainer.step,
            "seconds": round(trainer.elapsed, 1),
            "wall_seconds": round(time.monotonic() - started, 1),
            "progress": trainer.progress,
            "precision": trainer.precision.describe(),
            "final_lr": config.lr * lr_scale(trainer.progress, config.lr_schedule, config.lr_final),
        }
    return TrainResult(trainer.step, False, result)


def _start(
    dataset: Dataset,
    config: TrainConfig,
    out: Path,
    device: torch.device,
    dist: Distributed,
    resume: bool,
    run_info: dict | None,
    log: Callable[[str], None],
) -> Trainer:
    """A Trainer for a new run, or one resumed from its checkpoint (whose settings decide everything
    but how much longer to go on), its run.json written and its classifiers ready."""
    checkpoint = out / "checkpoint.pt"
    state = None
    if resume:
        if not checkpoint.is_file():
            raise InputError(f"{out}: nothing to resume (no checkpoint.pt)")
        state = load_checkpoint(checkpoint)
        try:
            saved = TrainConfig(**state["config"])
        except (TypeError, ValueError) as e:
            raise ModelError(f"{checkpoint}: a damaged checkpoint ({type(e).__name__}: {str(e)[:200]})") from None
        # How long to go on, and in what arithmetic, are this command's to say; the rest is the run's.
        longer = {
            "max_steps": config.max_steps or saved.max_steps,
            "max_minutes": config.max_minutes,
            "precision": config.precision,
        }
        config = TrainConfig(**{**asdict(saved), **longer})
    elif checkpoint.exists():
        raise OutputError(f"{out} already holds a run: continue it with --resume, or choose another --out")
    trainer = Trainer(dataset, config.resolved(), out, device, dist, log)
    if state is not None:
        if FaderConfig.from_dict(state["model_config"]) != trainer.model_config:
            raise InputError(f"{out}: the checkpoint was trained on other attributes or settings than these data")
        trainer.load_state(state)
        log(f"resuming {out} at step {trainer.step}")
    layout = ", channels-last" if trainer.precision.channels_last else ""
    log(f"precision: {trainer.precision.describe()}{layout}")
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "run.json") as tmp:
            info = {
                "config": asdict(trainer.config),
                "precision": trainer.precision.describe(),
                "dataset": dataset.summary(),
                **(run_info or {}),
            }
            tmp.write_text(json.dumps(info, indent=2))
    trainer.fit_classifiers()
    return trainer


def _loop(
    trainer: Trainer,
    pace: Pace,
    max_steps: float,
    metrics: Metrics,
    progress,
    on_step: Callable[[int, dict], None] | None,
) -> bool:
    """The steps, until the last one the pace allows; checkpoints and previews on the way. True if
    stopped by Ctrl-C (the step in flight finishes first)."""
    config, dist, stop = trainer.config, trainer.dist, _StopFlag()
    last_checkpoint, last = time.monotonic(), False
    with stop.installed(), progress:
        task = progress.add_task("training", total=100, completed=100 * trainer.progress, info="")
        while trainer.step < max_steps and not last:
            if stop.requested:
                return True
            step_start = time.monotonic()
            at, last = dist.agree(*pace(trainer.step, step_start))
            step_metrics = trainer.train_step(at)
            trainer.elapsed += time.monotonic() - step_start
            metrics.add(trainer.step, at, trainer.elapsed / 60, step_metrics, config.batch_size, last, progress, task)
            progress.update(task, completed=100 * at)
            due = (config.checkpoint_every and trainer.step % config.checkpoint_every == 0) or (
                not config.checkpoint_every and time.monotonic() - last_checkpoint > config.checkpoint_minutes * 60
            )
            if due:
                trainer.save()
                trainer.preview()
                last_checkpoint = time.monotonic()
            if on_step is not None:
                on_step(trainer.step, step_metrics)
    return False


# Steps below which edits at a size are known to be faint or blurred (docs/experiments.md: at 64 px
# added smiles went from 17% at 3,756 steps to 71% at 8,271, by an independent judge).
ENOUGH_STEPS = {32: 3000, 64: 8000}


def training_warnings(steps: int, progress: float, img_size: int, result: dict) -> list[str]:
    """Why a run may be under-trained, for the summary: schedules cut short, fewer steps than edits
    are known to need at this size, or edits the evaluation found blurred."""
    lines = []
    if progress < 1:
        lines.append(f"UNDER-TRAINED: the schedules stopped at {progress:.0%} (the learning rate never came down)")
    enough = ENOUGH_STEPS.get(img_size)
    blurred = any("BLURRED" in w for w in result.get("warnings", []))
    if enough and steps < enough or blurred:
        why = (
            f"{steps} steps, where edits at {img_size} px need about {enough:,}"
            if enough and steps < enough
            else f"{steps} steps"
        )
        lines.append(
            f"UNDER-TRAINED: {why}{' and some edits look blurred' if blurred else ''}: give it more"
            " --max-minutes or --max-steps (or resume it) before trusting its edits"
        )
    return lines


def _dataset(data_args: dict, config: TrainConfig, workers: int, log: Callable[[str], None]) -> Dataset:
    from fadercli.train.data import prepare
    from fadercli.weights.registry import home

    return prepare(
        data_args["data"],
        labels=data_args["labels"],
        images=data_args["images"],
        crop=data_args["crop"],
        align=data_args.get("align", False),
        attributes=data_args["attributes"],
        img_size=config.img_size,
        seed=config.seed,
        val_fraction=config.val_fraction,
        cache_root=home() / "datasets",
        workers=workers,
        log=log,
    )


def run_training(
    data_args: dict,
    config: TrainConfig,
    out: Path,
    *,
    device_name: str = "auto",
    resume: bool = False,
    workers: int = 2,
    quiet: bool = False,
    started: float | None = None,
    tensorboard: bool = False,
    command: str | None = None,
) -> dict:
    """What `fader train` does: set up (torchrun-aware), prepare data, train, return the scores."""
    from fadercli.devices import describe, pick_device

    if tensorboard:  # before any minute goes into data or classifiers
        import_extra("tensorboard", "tensorboard")
    dist = Distributed.from_env()
    device = pick_device(device_name)
    if dist.world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", dist.local_rank)
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    log = _log if dist.main and not quiet else (lambda message: None)
    try:
        log(f"device: {describe(device)}" + (f" x {dist.world} processes" if dist.world > 1 else ""))
        data_args = {k: (str(v) if isinstance(v, Path) else v) for k, v in data_args.items()}
        paths = {k: Path(data_args[k]) if data_args[k] else None for k in ("data", "labels", "images")}
        if dist.main:  # rank 0 decodes; the others then find the cache ready
            dataset = _dataset({**data_args, **paths}, config, workers, log)
        dist.barrier()
        if not dist.main:
            dataset = _dataset({**data_args, **paths}, config, workers, log)
        result = train(
            dataset,
            config,
            out,
            device=device,
            resume=resume,
            dist=dist,
            run_info={"data": data_args, **({"command": command} if command else {})},
            started=started,
            log=log,
            show_progress=not quiet,
            tensorboard=tensorboard,
        )
    finally:
        if dist.world > 1:
            torch.distributed.destroy_process_group()
    if result.interrupted:
        raise KeyboardInterrupt
    return result.metrics


def evaluate_run(run: Path, *, device_name: str = "auto") -> dict:
    """Recompute a run's scores on its validation split (`fader eval`)."""
    from fadercli.devices import pick_device

    info_path = Path(run) / "run.json"
    if not info_path.is_file():
        raise InputError(f"{run}: not a training run folder (no run.json)")
    info = json.loads(info_path.read_text())
    config = TrainConfig(**info["config"])
    data_args = info["data"]
    paths = {k: Path(data_args[k]) if data_args[k] else None for k in ("data", "labels", "images")}
    dataset = _dataset({**data_args, **paths}, config, workers=2, log=_log)
    device = pick_device(device_name)
    loaded = load_model(Path(run) / "model.safetensors", kind="fader")
    ae = loaded.model.to(device)
    clf = load_model(Path(run) / "classifier.safetensors", kind="classifier").model.to(device)
    result = evaluate(
        ae, clf, dataset.attributes, dataset.cache.chunks(dataset.scored(), dataset.labels), device=device
    )
    point = {"eval": result, "source": "fader eval"}
    if isinstance(loaded.training.get("steps"), int):  # a point on the run's curves
        point = {"step": loaded.training["steps"], **point}
    with open(Path(run) / "metrics.jsonl", "a") as f:
        f.write(json.dumps(point) + "\n")
    return result

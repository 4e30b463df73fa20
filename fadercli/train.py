"""Training a Fader Network: one script for one device or `torchrun` (DistributedDataParallel).

Each step (the paper's method):
  1. encode the batch: z = E(x);
  2. latent discriminator step: teach P to predict the attributes from z (detached);
  3. autoencoder step: reconstruct x from (z, y), and push P's prediction on z towards the
     *flipped* attributes, weighted by a lambda that rises linearly over the first part of the run,
     so z stops carrying the attributes and the decoder has to take them from y.
Optionally (the release's "classifier on decoded images" loss) a frozen attribute classifier,
the guide, trained first on the same split, judges decodes with random attributes, which teaches
the decoder to render attributes it is asked for. Runs are scored by another classifier than the
guide, so that the decoder cannot simply learn to please its own judge.

A run folder holds model.safetensors (our release format), checkpoint.pt (everything needed to
resume exactly; loads with torch.load(weights_only=True)), classifier.safetensors (the judge),
guide.safetensors (with the classifier loss), run.json,
metrics.jsonl and previews/.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fadercli.attributes import AttributeSet
from fadercli.data import BatchPlan, Dataset
from fadercli.errors import InputError, UsageError
from fadercli.evaluate import (
    attribute_loss,
    evaluate,
    guide_config,
    judge_config,
    one_hot,
    predict,
    to_tensor,
    train_classifiers,
)
from fadercli.files import atomic_path
from fadercli.model import AutoEncoder, FaderConfig, LatentDiscriminator
from fadercli.progress import progress_bar
from fadercli.weights import LoadedModel, build_from_tensors, load_model, require_kind, save_model

CHECKPOINT_VERSION = 1
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    """Every knob of a run. None means "chosen from the image size and run length" (see resolved())."""

    img_size: int = 64
    batch_size: int = 32
    max_steps: int | None = None
    max_minutes: float | None = None
    seed: int = 0
    val_fraction: float = 0.05
    # architecture (FACTS.md names); None = by image size
    init_fm: int | None = None
    max_fm: int | None = None
    n_layers: int | None = None
    n_skip: int = 0
    upsample: str = "convtranspose"
    instance_norm: bool = False
    dec_dropout: float = 0.0
    hid_dim: int = 512
    lat_dis_dropout: float = 0.3
    # optimisation
    lr: float | None = None
    dis_lr: float | None = None
    lr_schedule: str | None = None  # "constant", or "cosine": down to lr_final x lr by the end
    lr_final: float = 0.1
    beta1: float = 0.5
    beta2: float = 0.999
    clip_grad_norm: float = 5.0
    lambda_ae: float = 1.0
    lambda_lat_dis: float | None = None
    lambda_ramp: float = 0.3  # share of the run over which lambda_lat_dis rises from 0
    lambda_clf: float | None = None
    clf_share: float = 0.25  # share of each batch decoded with other attributes for that loss
    dis_steps: int = 1  # discriminator updates per autoencoder step (on the same latents)
    flip: bool = True
    # evaluation classifier, checkpoints, previews
    clf_steps: int | None = None
    clf_batch: int = 64  # smiles are learnt late: a classifier needs ~60,000 faces seen (docs/experiments.md)
    clf_budget: float = 0.2  # with max_minutes: the classifiers' share of the run's time at most
    checkpoint_every: int = 0  # steps; 0 = every checkpoint_minutes
    checkpoint_minutes: float = 10.0
    previews: int = 8  # validation faces shown in each preview

    def resolved(self) -> TrainConfig:
        """A copy with every None filled in from the image size."""
        preset = SIZE_PRESETS.get(self.img_size)
        if preset is None:
            raise UsageError(f"--img-size must be one of {', '.join(map(str, SIZE_PRESETS))}")
        filled = {k: v for k, v in preset.items() if getattr(self, k) is None}
        if self.max_steps is None and self.max_minutes is None:
            filled["max_steps"] = DEFAULT_STEPS[self.img_size]
        resolved = TrainConfig(**{**asdict(self), **filled})
        if resolved.lr_schedule not in LR_SCHEDULES:
            raise UsageError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}")
        return resolved

    def model_config(self, attributes: AttributeSet) -> FaderConfig:
        try:
            return FaderConfig(
                attributes.pairs(), img_size=self.img_size, init_fm=self.init_fm, max_fm=self.max_fm,
                n_layers=self.n_layers, n_skip=self.n_skip, upsample=self.upsample,
                instance_norm=self.instance_norm, dec_dropout=self.dec_dropout, hid_dim=self.hid_dim,
                lat_dis_dropout=self.lat_dis_dropout,
            )
        except ValueError as e:
            raise UsageError(str(e)) from None


# Architecture and loss weights by image size; see docs/experiments.md for how they were chosen.
_SHORT_RUNS = dict(lr=2e-3, dis_lr=2e-3, lr_schedule="cosine", lambda_lat_dis=1e-2, lambda_clf=0.02)
_RELEASE = dict(lr=2e-4, dis_lr=2e-4, lr_schedule="constant", lambda_lat_dis=1e-4, lambda_clf=0.0)
SIZE_PRESETS: dict[int, dict] = {
    32: dict(init_fm=16, max_fm=256, n_layers=4, clf_steps=1000, **_SHORT_RUNS),
    64: dict(init_fm=16, max_fm=256, n_layers=5, clf_steps=1000, **_SHORT_RUNS),
    128: dict(init_fm=32, max_fm=512, n_layers=6, clf_steps=1000, **_RELEASE),
    256: dict(init_fm=32, max_fm=512, n_layers=6, clf_steps=2000, **_RELEASE),
}
DEFAULT_STEPS = {32: 4000, 64: 20000, 128: 100000, 256: 300000}


@dataclass
class Distributed:
    """Where this process sits in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Distributed:
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            return cls()
        return cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def agree(self, progress: float, last: bool) -> tuple[float, bool]:
        """Every process takes the furthest progress and stops when any would (their clocks differ)."""
        if self.world == 1:
            return progress, last
        both = torch.tensor([progress, float(last)], dtype=torch.float64)
        if torch.distributed.get_backend() == "nccl":
            both = both.cuda()
        torch.distributed.all_reduce(both, op=torch.distributed.ReduceOp.MAX)
        return float(both[0]), bool(both[1])


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


class Trainer:
    def __init__(
        self,
        dataset: Dataset,
        config: TrainConfig,
        out: Path,
        device: torch.device,
        dist: Distributed,
        log: Callable[[str], None],
    ):
        self.dataset, self.config, self.out, self.device, self.dist, self.log = dataset, config, out, device, dist, log
        self.attributes = dataset.attributes
        self.model_config = config.model_config(self.attributes)
        torch.manual_seed(config.seed + dist.rank)
        self.ae = AutoEncoder(self.model_config).to(device)
        self.dis = LatentDiscriminator(self.model_config).to(device)
        if device.type == "cuda":
            self.ae = self.ae.to(memory_format=torch.channels_last)
            self.dis = self.dis.to(memory_format=torch.channels_last)
        betas = (config.beta1, config.beta2)
        self.opt_ae = torch.optim.Adam(self.ae.parameters(), lr=config.lr, betas=betas, **_fused(device))
        self.opt_dis = torch.optim.Adam(self.dis.parameters(), lr=config.dis_lr, betas=betas, **_fused(device))
        self.forward: torch.nn.Module = _AutoEncoderPass(self.ae)
        self.dis_ddp: torch.nn.Module = self.dis
        if dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if device.type == "cuda" else None
            self.forward = DDP(self.forward, device_ids=ids)
            self.dis_ddp = DDP(self.dis, device_ids=ids)
        if config.batch_size % dist.world:
            raise UsageError(f"--batch-size {config.batch_size} does not split over {dist.world} processes")
        self.plan = BatchPlan(dataset.train, config.batch_size, config.seed, dist.rank, dist.world)
        self.clf = self.guide = None
        self.step = 0
        self.progress = 0.0  # where the run is along its schedules, 0 to 1 (see Pace)
        self.elapsed = 0.0  # training seconds before this process (for resumed runs)
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
        )

    # ------------------------------------------------------------ data

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows, flips = self.plan.batch(step)
        x = to_tensor(self.dataset.cache.read(rows), self.device, flips if self.config.flip else None)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x, torch.from_numpy(self.dataset.labels[rows]).to(self.device)

    # ------------------------------------------------------------ one step

    def train_step(self, progress: float) -> dict[str, torch.Tensor | float]:
        """One step at `progress` (0 to 1) along the run's schedules."""
        cfg, attrs = self.config, self.attributes
        self.progress = progress
        scale = lr_scale(progress, cfg.lr_schedule, cfg.lr_final)
        for opt, base in ((self.opt_ae, cfg.lr), (self.opt_dis, cfg.dis_lr)):
            for group in opt.param_groups:
                group["lr"] = base * scale
        x, y = self.batch(self.step)
        n_edit = max(1, round(cfg.clf_share * len(y)))
        target = _random_labels(attrs, n_edit, self.device) if self.guide is not None else None
        self.ae.train()
        with self.autocast:
            z, recon, edited = self.forward(x, one_hot(attrs, y), None if target is None else one_hot(attrs, target))

        # Latent discriminator: predict the true attributes from z (no gradient to the encoder).
        # One encoder pass serves both steps (the release encodes every batch twice).
        self.dis.train()
        for _ in range(cfg.dis_steps):
            with self.autocast:
                dis_logits = self.dis_ddp(z.detach())
            dis_loss = attribute_loss(attrs, dis_logits.float(), y)
            self.opt_dis.zero_grad(set_to_none=True)
            dis_loss.backward()
            if cfg.clip_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.dis.parameters(), cfg.clip_grad_norm)
            self.opt_dis.step()

        # Autoencoder: reconstruct, and fool the updated discriminator towards flipped attributes.
        lam = lambda_schedule(progress, cfg.lambda_lat_dis, cfg.lambda_ramp)
        rec_loss = F.mse_loss(recon.float(), x.float())
        loss = cfg.lambda_ae * rec_loss
        adv_loss = clf_loss = torch.zeros((), device=self.device)
        if lam > 0:
            self.dis.eval().requires_grad_(False)
            with self.autocast:
                adv_logits = self.dis(z)
            self.dis.requires_grad_(True)
            adv_loss = attribute_loss(attrs, adv_logits.float(), _flipped(attrs, y))
            loss = loss + lam * adv_loss
        if edited is not None and self.guide is not None:
            with self.autocast:
                clf_logits = self.guide(edited)
            clf_loss = attribute_loss(attrs, clf_logits.float(), target)
            loss = loss + cfg.lambda_clf * clf_loss
        self.opt_ae.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.ae.parameters(), cfg.clip_grad_norm)
        self.opt_ae.step()
        self.step += 1
        return {
            "rec_loss": rec_loss.detach(),
            "dis_loss": dis_loss.detach(),
            "dis_accuracy": (predict(attrs, dis_logits.detach()) == y).float().mean(),
            "adv_loss": adv_loss.detach(),
            "clf_loss": clf_loss.detach(),
            "lambda": lam,
            "lr": cfg.lr * scale,
        }

    # ------------------------------------------------------------ classifier

    def fit_classifiers(self) -> None:
        """Train (rank 0), or load on resume, the evaluation classifier and, when the classifier loss
        is on, the guide classifier behind it: both on the training split, another architecture each."""
        files = {"classifier.safetensors": (judge_config(self.attributes, self.config.img_size), 0.0)}
        if self.config.lambda_clf > 0:
            files["guide.safetensors"] = (guide_config(self.attributes, self.config.img_size), 0.02)
        missing = [name for name in files if not (self.out / name).is_file()]
        if self.dist.main and missing:
            plan = BatchPlan(self.dataset.train, min(self.config.clf_batch, len(self.dataset.train)), self.config.seed + 1)

            def batches(step):
                rows, flips = plan.batch(step)
                x = to_tensor(self.dataset.cache.read(rows), self.device, flips)
                return x, torch.from_numpy(self.dataset.labels[rows]).to(self.device)

            started = time.monotonic()
            budget = self.config.clf_budget * self.config.max_minutes * 60 if self.config.max_minutes else None
            trained, steps = train_classifiers(self.attributes, [files[n] for n in missing], batches,
                                               steps=self.config.clf_steps, device=self.device, seconds=budget)
            for name, clf in zip(missing, trained):
                save_model(self.out / name, clf, training={"steps": steps, "purpose": name.split(".")[0]})
            fitted = "" if steps == self.config.clf_steps else f", fitted into {self.config.clf_budget:.0%} of the run's time"
            self.log(f"{' and '.join(missing)} trained in {time.monotonic() - started:.0f} s ({steps} steps{fitted})")
        self.dist.barrier()

        def load(name):
            return load_model(self.out / name, kind="classifier").model.to(self.device).requires_grad_(False)

        self.clf = load("classifier.safetensors")
        self.guide = load("guide.safetensors") if "guide.safetensors" in files else None

    # ------------------------------------------------------------ saving

    def state(self) -> dict:
        return {
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "progress": self.progress,
            "elapsed": self.elapsed,
            "config": asdict(self.config),
            "model_config": self.model_config.to_dict(),
            "ae": self.ae.state_dict(),
            "dis": self.dis.state_dict(),
            "opt_ae": self.opt_ae.state_dict(),
            "opt_dis": self.opt_dis.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
        }

    def load_state(self, state: dict) -> None:
        self.ae.load_state_dict(state["ae"])
        self.dis.load_state_dict(state["dis"])
        self.opt_ae.load_state_dict(state["opt_ae"])
        self.opt_dis.load_state_dict(state["opt_dis"])
        self.step, self.elapsed = state["step"], state["elapsed"]
        if "progress" in state:
            self.progress = state["progress"]
        else:  # written before schedules followed progress: they were laid over a step horizon
            horizon = state.get("horizon")
            self.progress = min(1.0, self.step / max(horizon - 1, 1)) if horizon else 0.0
        torch.set_rng_state(state["rng_cpu"])
        if self.device.type == "cuda" and state["rng_cuda"]:
            torch.cuda.set_rng_state_all(state["rng_cuda"])

    def save(self) -> None:
        """checkpoint.pt and model.safetensors, each atomically (rank 0 only)."""
        if not self.dist.main:
            return
        with atomic_path(self.out / "checkpoint.pt") as tmp:
            torch.save(self.state(), tmp)
        self.save_model()

    def save_model(self, metrics: dict | None = None) -> None:
        """model.safetensors with the training metadata (and the final scores, once known)."""
        training = {
            "method": "fader networks (reconstruction + latent discriminator)"
            + (" + classifier loss" if self.config.lambda_clf > 0 else ""),
            "data": self.dataset.description,
            "steps": self.step,
            "batch_size": self.config.batch_size,
            "seconds": round(self.elapsed),
            **({"evaluation": metrics} if metrics else {}),
        }
        save_model(
            self.out / "model.safetensors", self.ae, slider_ranges=slider_ranges(self.attributes), training=training
        )

    # ------------------------------------------------------------ looking at the model

    @torch.no_grad()
    def evaluate(self, rows: np.ndarray | None = None) -> dict:
        rows = self.dataset.scored() if rows is None else rows
        chunks = self.dataset.cache.chunks(rows, self.dataset.labels)
        return evaluate(self.ae, self.clf, self.attributes, chunks, device=self.device)

    def final_seconds(self) -> float:
        """What the end of a timed run will take: the evaluation, timed here on a few faces and
        scaled to the faces it scores, the last checkpoint and preview; with a margin for a busy
        machine. Reserved from --max-minutes, so the run ends on time without idling."""
        scored = self.dataset.scored()
        few = scored[: min(len(scored), 32)]
        started = time.monotonic()
        if self.dist.main and len(few):
            self.evaluate(few)
        evaluation = (time.monotonic() - started) * len(scored) / max(len(few), 1)
        started = time.monotonic()
        torch.save(self.state(), io.BytesIO())  # about what writing the checkpoint and the model costs
        return 1.5 * (evaluation + 3 * (time.monotonic() - started)) + 2.0

    @torch.no_grad()
    def preview(self) -> None:
        """previews/step_N.png: validation faces; original, reconstruction, each attribute at 0 and 1."""
        from fadercli.grids import tile

        rows = self.dataset.val[: self.config.previews]
        if not self.dist.main or len(rows) == 0:
            return
        self.ae.eval()
        x = to_tensor(self.dataset.cache.read(rows), self.device)
        y = torch.from_numpy(self.dataset.labels[rows]).to(self.device)
        features = self.ae.encode(x)
        columns = [x, self.ae.decode(features, one_hot(self.attributes, y))]
        captions = ["original", "reconstruction"]
        for i, a in enumerate(self.attributes):
            for value in range(a.n_categories) if not a.binary else (0, 1):
                target = y.clone()
                target[:, i] = value
                columns.append(self.ae.decode(features, one_hot(self.attributes, target)))
                captions.append(f"{a.name}={value}")
        as_uint8 = [(c.float().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()) for c in columns]
        cells = [[col[r] for col in as_uint8] for r in range(len(rows))]
        scale = max(1, 96 // self.config.img_size)
        sheet = tile(cells, [captions] + [[""] * len(captions)] * (len(rows) - 1), scale=scale)
        folder = self.out / "previews"
        folder.mkdir(exist_ok=True)
        target = folder / f"step_{self.step:06d}.png"
        with atomic_path(target) as tmp:
            sheet.save(tmp, format="PNG")


class _AutoEncoderPass(torch.nn.Module):
    """One forward for DDP: encode, reconstruct, and (for the classifier loss) decode an edit."""

    def __init__(self, ae: AutoEncoder):
        super().__init__()
        self.ae = ae

    def forward(self, x, y, y_edit=None):
        features = self.ae.encode(x)
        recon = self.ae.decode(features, y)
        # The edit decodes only the first len(y_edit) faces: the losses need few, each costs a decoder pass.
        edited = None if y_edit is None else self.ae.decode([f[: len(y_edit)] for f in features], y_edit)
        return features[0], recon, edited


def slider_ranges(attributes: AttributeSet) -> dict[str, tuple[float, float]]:
    """The authors' convention, from 1 - max to max, with max 2: a binary attribute exaggerated twice."""
    return {a.name: (-1.0, 2.0) if a.binary else (0.0, a.n_categories - 1.0) for a in attributes}


def lambda_schedule(progress: float, final: float, ramp: float) -> float:
    """The adversarial weight: linear from 0 up to `final` over the first `ramp` share of the run."""
    return final * min(1.0, progress / ramp) if ramp > 0 else final


def lr_scale(progress: float, schedule: str, final: float = 0.1) -> float:
    """Multiplier of the learning rates: 1, or a cosine from 1 to `final` over the run."""
    if schedule == "constant":
        return 1.0
    return final + (1 - final) / 2 * (1 + math.cos(math.pi * min(1.0, progress)))


class Pace:
    """Where a run stands along its schedules (progress from 0 to 1), and which step is its last.

    Steps count with --max-steps, time does with --max-minutes (the share of the training time
    used, from the loop's start to the deadline); with both, whichever is further along. Each
    step's duration is tracked, so the step that would reach the deadline runs at progress 1 and
    ends the run: the last step of a run is the last step of its schedules however the speed
    drifts. A resumed run lays the rest of its schedules over the time it is given now.
    """

    def __init__(self, max_steps: float, deadline: float, progress: float, now: float):
        self.max_steps, self.deadline = max_steps, deadline
        self.start, self.start_progress = now, progress
        self.last_call: float | None = None
        self.step_seconds: float | None = None  # a moving average of the time between steps

    def __call__(self, step: int, now: float) -> tuple[float, bool]:
        """(progress, last) for the step about to run."""
        if self.last_call is not None:
            seconds = now - self.last_call
            self.step_seconds = seconds if self.step_seconds is None else 0.9 * self.step_seconds + 0.1 * seconds
        self.last_call = now
        by_steps = step / max(self.max_steps - 1, 1) if math.isfinite(self.max_steps) else 0.0
        last = step + 1 >= self.max_steps
        by_time = 0.0
        if math.isfinite(self.deadline):
            by_time = self._share(now)
            last = last or now >= self.deadline or (
                self.step_seconds is not None and self._share(now + self.step_seconds) >= 1
            )
        return (1.0 if last else min(1.0, max(by_steps, by_time))), last

    def _share(self, t: float) -> float:
        """Progress by time at `t`: the rest of the schedules laid over the time left at the start."""
        span = max(self.deadline - self.start, 1e-9)
        return self.start_progress + (1 - self.start_progress) * (t - self.start) / span


def _fused(device: torch.device) -> dict:
    return {"fused": True} if device.type == "cuda" else {"foreach": True}


def _flipped(attributes: AttributeSet, y: torch.Tensor) -> torch.Tensor:
    """The target that fools the discriminator: the opposite value (a random other category)."""
    out = y.clone()
    for i, a in enumerate(attributes):
        if a.binary:
            out[:, i] = 1 - y[:, i]
        else:
            shift = torch.randint(1, a.n_categories, (len(y),), device=y.device)
            out[:, i] = (y[:, i] + shift) % a.n_categories
    return out


def _random_labels(attributes: AttributeSet, n: int, device) -> torch.Tensor:
    return torch.stack([torch.randint(0, a.n_categories, (n,), device=device) for a in attributes], 1)


def _stderr_log(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def _check_archive(path: Path) -> None:
    """A checkpoint is a zip of uncompressed records (torch.save's format): one whose records are
    compressed, or claim more bytes than the file holds, could inflate to any size when loaded."""
    import zipfile

    from fadercli.errors import ModelError

    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ModelError(f"{path}: not a readable checkpoint ({e})") from None
    size = path.stat().st_size
    if any(r.compress_type != zipfile.ZIP_STORED for r in records) or sum(r.file_size for r in records) > size:
        raise ModelError(f"{path}: not a checkpoint torch.save wrote (compressed or oversized records)")


def load_checkpoint(path: Path) -> dict:
    """A checkpoint.pt, read without unpickling anything but tensors and plain containers, its
    configs and autoencoder checked (a ModelError line for anything else)."""
    from fadercli.errors import ModelError

    _check_archive(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt zip, truncated file, forbidden global: all mean "unusable"
        raise ModelError(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise ModelError(f"{path}: not a fader training checkpoint (version {CHECKPOINT_VERSION})")
    try:
        FaderConfig.from_dict(state["model_config"])
        TrainConfig(**state["config"])
        if not isinstance(state["ae"], dict) or not all(isinstance(k, str) for k in state["ae"]):
            raise ValueError("its autoencoder is not a state dict")
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{path}: a damaged checkpoint ({type(e).__name__}: {str(e)[:200]})") from None
    return state


def load_checkpoint_model(path: Path, kind: str | None = None) -> LoadedModel:
    """The autoencoder of a training checkpoint, for `--model RUN/checkpoint.pt`."""
    state = load_checkpoint(path)
    require_kind(str(path), "fader", kind)
    config = FaderConfig.from_dict(state["model_config"])
    model = build_from_tensors("fader", config, state["ae"], str(path))
    training = {"steps": state.get("step"), "source": "training checkpoint"}
    return LoadedModel("fader", model, config, slider_ranges(AttributeSet.from_pairs(config.attributes)), training, Path(path))


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
    log: Callable[[str], None] = _stderr_log,
    show_progress: bool = True,
    on_step: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Train (or resume) a run in `out`. `started` (time.monotonic()) anchors --max-minutes, so
    that data preparation counts against the budget too."""
    dist = dist or Distributed()
    started = time.monotonic() if started is None else started
    out = Path(out)
    checkpoint = out / "checkpoint.pt"
    state = None
    if resume:
        if not checkpoint.is_file():
            raise InputError(f"{out}: nothing to resume (no checkpoint.pt)")
        state = load_checkpoint(checkpoint)
        saved = TrainConfig(**state["config"])
        # The saved run decides everything but how much longer to go on.
        config = TrainConfig(**{**asdict(saved), "max_steps": config.max_steps or saved.max_steps,
                                "max_minutes": config.max_minutes})
    elif checkpoint.exists():
        from fadercli.errors import OutputError

        raise OutputError(f"{out} already holds a run: continue it with --resume, or choose another --out")
    config = config.resolved()
    trainer = Trainer(dataset, config, out, device, dist, log)
    if state is not None:
        if FaderConfig.from_dict(state["model_config"]) != trainer.model_config:
            raise InputError(f"{out}: the checkpoint was trained on other attributes or settings than these data")
        trainer.load_state(state)
        log(f"resuming {out} at step {trainer.step}")
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "run.json") as tmp:
            tmp.write_text(json.dumps({"config": asdict(config), **(run_info or {})}, indent=2))
    trainer.fit_classifiers()

    budget = config.max_minutes * 60 if config.max_minutes else math.inf
    reserve = trainer.final_seconds() if math.isfinite(budget) else 0.0  # the final evaluation and saving
    deadline = started + budget - reserve
    max_steps = config.max_steps or math.inf
    if math.isinf(max_steps) and math.isinf(budget):
        raise UsageError("give --max-steps or --max-minutes")
    pace = Pace(max_steps, deadline, trainer.progress, time.monotonic())
    sums: dict[str, torch.Tensor | float] = {}
    n_sum, log_every = 0, 50
    last_log = last_checkpoint = time.monotonic()
    interval_images, interval_start = 0, time.monotonic()
    stop = _StopFlag()
    metrics_file = out / "metrics.jsonl"
    progress = progress_bar(show_progress and dist.main, info=True, percent=True)

    def record(entry: dict) -> None:
        if dist.main:
            with open(metrics_file, "a") as f:
                f.write(json.dumps(entry) + "\n")

    interrupted = last = False
    with stop.installed(), progress:
        task = progress.add_task("training", total=100, completed=100 * trainer.progress, info="")
        while trainer.step < max_steps and not last:
            if stop.requested:
                interrupted = True
                break
            step_start = time.monotonic()
            at, last = dist.agree(*pace(trainer.step, step_start))
            metrics = trainer.train_step(at)
            trainer.elapsed += time.monotonic() - step_start
            interval_images += config.batch_size
            schedule = {k: metrics.pop(k) for k in ("lambda", "lr")}  # logged as they are, not averaged
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v
            n_sum += 1
            if trainer.step % log_every == 0 or last:
                now = time.monotonic()
                entry = {"step": trainer.step, "progress": round(at, 4),
                         **{k: round(float(v) / n_sum, 5) for k, v in sums.items()}, **schedule,
                         "images_per_s": round(interval_images / (now - interval_start), 1)}
                record(entry)
                info = f"step {trainer.step}  rec {entry['rec_loss']:.4f}  dis acc {entry['dis_accuracy']:.2f}  λ {entry['lambda']:.1e}"
                progress.update(task, info=info)
                if not progress.live.is_started and now - last_log > 30:
                    log(f"{at:.0%}  {info}  {entry['images_per_s']} img/s")
                    last_log = now
                sums, n_sum, interval_images, interval_start = {}, 0, 0, now
            progress.update(task, completed=100 * at)
            due = (config.checkpoint_every and trainer.step % config.checkpoint_every == 0) or (
                not config.checkpoint_every and time.monotonic() - last_checkpoint > config.checkpoint_minutes * 60
            )
            if due:
                trainer.save()
                trainer.preview()
                last_checkpoint = time.monotonic()
            if on_step is not None:
                on_step(trainer.step, metrics)
    if interrupted:
        trainer.save()
        log(f"stopped at step {trainer.step}; checkpoint saved: continue with --resume")
        return TrainResult(trainer.step, True, {})
    trainer.save()  # the weights are safe before the evaluation, which can take a while
    trainer.preview()
    result = trainer.evaluate() if dist.main else {}
    if dist.main:
        result["warnings"] = result["warnings"] + training_warnings(trainer.step, trainer.progress, config.img_size, result)
        record({"step": trainer.step, "eval": result})
        trainer.save_model(result)
        result = {**result, "steps": trainer.step, "seconds": round(trainer.elapsed, 1),
                  "wall_seconds": round(time.monotonic() - started, 1), "progress": trainer.progress,
                  "final_lr": config.lr * lr_scale(trainer.progress, config.lr_schedule, config.lr_final)}
    return TrainResult(trainer.step, False, result)


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
        why = f"{steps} steps, where edits at {img_size} px need about {enough:,}" if enough and steps < enough else f"{steps} steps"
        lines.append(f"UNDER-TRAINED: {why}{' and some edits look blurred' if blurred else ''}: give it more"
                     " --max-minutes or --max-steps (or resume it) before trusting its edits")
    return lines


def _dataset(data_args: dict, config: TrainConfig, workers: int, log: Callable[[str], None]) -> Dataset:
    from fadercli.data import prepare
    from fadercli.hub import home

    return prepare(
        data_args["data"], labels=data_args["labels"], images=data_args["images"], crop=data_args["crop"],
        align=data_args.get("align", False), attributes=data_args["attributes"], img_size=config.img_size, seed=config.seed,
        val_fraction=config.val_fraction, cache_root=home() / "datasets", workers=workers, log=log,
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
) -> dict:
    """What `fader train` does: set up (torchrun-aware), prepare data, train, return the scores."""
    from fadercli.devices import describe, pick_device

    dist = Distributed.from_env()
    device = pick_device(device_name)
    if dist.world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", dist.local_rank)
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    log = _stderr_log if dist.main and not quiet else (lambda message: None)
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
            dataset, config, out, device=device, resume=resume, dist=dist, run_info={"data": data_args},
            started=started, log=log, show_progress=not quiet,
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
    dataset = _dataset({**data_args, **paths}, config, workers=2, log=_stderr_log)
    device = pick_device(device_name)
    ae = load_model(Path(run) / "model.safetensors", kind="fader").model.to(device)
    clf = load_model(Path(run) / "classifier.safetensors", kind="classifier").model.to(device)
    result = evaluate(ae, clf, dataset.attributes, dataset.cache.chunks(dataset.scored(), dataset.labels), device=device)
    with open(Path(run) / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"eval": result, "source": "fader eval"}) + "\n")
    return result

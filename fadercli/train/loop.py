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
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fadercli.attributes import AttributeSet
from fadercli.devices import pick_precision
from fadercli.errors import UsageError
from fadercli.files import atomic_path
from fadercli.net.model import AutoEncoder, LatentDiscriminator
from fadercli.net.tensors import from_uint8, to_uint8
from fadercli.train.classifiers import (
    attribute_loss,
    guide_config,
    judge_config,
    one_hot,
    predict,
    train_classifiers,
)
from fadercli.train.config import TrainConfig
from fadercli.train.data import BatchPlan, Dataset
from fadercli.train.evaluate import evaluate
from fadercli.weights.checkpoints import CHECKPOINT_VERSION
from fadercli.weights.format import load_model, save_model


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
        self.precision = pick_precision(config.precision, device)
        torch.manual_seed(config.seed + dist.rank)
        self.ae = AutoEncoder(self.model_config).to(device)
        self.dis = LatentDiscriminator(self.model_config).to(device)
        if self.precision.channels_last:  # the discriminator's maps are 2x2 at most: no layout to gain
            self.ae = self.ae.to(memory_format=torch.channels_last)
        betas = (config.beta1, config.beta2)
        # Fused Adam: one kernel for all parameters (on the CPU too, since torch 2.4: a tenth of a step at 64 px).
        self.opt_ae = torch.optim.Adam(self.ae.parameters(), lr=config.lr, betas=betas, fused=True)
        self.opt_dis = torch.optim.Adam(self.dis.parameters(), lr=config.dis_lr, betas=betas, fused=True)
        # float16 only: gradients scaled up before the backward pass so small ones survive, then back down.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision.needs_scaler)
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

    # ------------------------------------------------------------ data

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows, flips = self.plan.batch(step)
        x = from_uint8(self.dataset.cache.read(rows), self.device, flips if self.config.flip else None)
        if self.precision.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, torch.from_numpy(self.dataset.labels[rows]).to(self.device)

    # ------------------------------------------------------------ one step

    def train_step(self, progress: float) -> dict[str, torch.Tensor | float]:
        """One step at `progress` (0 to 1) along the run's schedules. The autoencoder and the guide run
        in the run's precision; the latent discriminator (a few small layers on a 2x2 latent, whose logits
        decide the adversarial term) and every loss in float32."""
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
        with self.precision.autocast():
            z, recon, edited = self.forward(x, one_hot(attrs, y), None if target is None else one_hot(attrs, target))
        z = z.float()

        # Latent discriminator: predict the true attributes from z (no gradient to the encoder).
        # One encoder pass serves both steps (the release encodes every batch twice).
        self.dis.train()
        for _ in range(cfg.dis_steps):
            dis_logits = self.dis_ddp(z.detach())
            dis_loss = attribute_loss(attrs, dis_logits, y)
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
            adv_logits = self.dis(z)
            self.dis.requires_grad_(True)
            adv_loss = attribute_loss(attrs, adv_logits, _flipped(attrs, y))
            loss = loss + lam * adv_loss
        if edited is not None and self.guide is not None:
            with self.precision.autocast():
                clf_logits = self.guide(edited)
            clf_loss = attribute_loss(attrs, clf_logits.float(), target)
            loss = loss + cfg.lambda_clf * clf_loss
        self.opt_ae.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt_ae)  # clipping sees the true gradients
        if cfg.clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.ae.parameters(), cfg.clip_grad_norm)
        self.scaler.step(self.opt_ae)  # skipped when float16 gradients overflowed
        self.scaler.update()
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
        # Both see faded faces as well (classifiers.faded): the evaluation classifier learns that a
        # trace of an attribute is the attribute ("presence"), the guide how much of it shows
        # ("strength"), so that neither calls the faint frames a removal leaves "no glasses".
        size = self.config.img_size
        files = {"classifier.safetensors": (judge_config(self.attributes, size), 0.0, "presence")}
        if self.config.lambda_clf > 0:
            files["guide.safetensors"] = (guide_config(self.attributes, size), 0.02, "strength")
        missing = [name for name in files if not (self.out / name).is_file()]
        if self.dist.main and missing:
            plan = BatchPlan(
                self.dataset.train, min(self.config.clf_batch, len(self.dataset.train)), self.config.seed + 1
            )

            def batches(step):
                rows, flips = plan.batch(step)
                x = from_uint8(self.dataset.cache.read(rows), self.device, flips)
                return x, torch.from_numpy(self.dataset.labels[rows]).to(self.device)

            started = time.monotonic()
            budget = self.config.clf_budget * self.config.max_minutes * 60 if self.config.max_minutes else None
            trained, steps = train_classifiers(
                self.attributes,
                [files[n] for n in missing],
                batches,
                steps=self.config.clf_steps,
                device=self.device,
                seconds=budget,
                precision=self.precision,
            )
            for name, clf in zip(missing, trained):
                save_model(self.out / name, clf, training={"steps": steps, "purpose": name.split(".")[0]})
            fitted = (
                ""
                if steps == self.config.clf_steps
                else f", fitted into {self.config.clf_budget:.0%} of the run's time"
            )
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
            "scaler": self.scaler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
        }

    def load_state(self, state: dict) -> None:
        self.ae.load_state_dict(state["ae"])
        self.dis.load_state_dict(state["dis"])
        self.opt_ae.load_state_dict(state["opt_ae"])
        self.opt_dis.load_state_dict(state["opt_dis"])
        if state.get("scaler"):  # a float16 run's scale, to go on where it was
            self.scaler.load_state_dict(state["scaler"])
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
            "precision": self.precision.name,
            "seconds": round(self.elapsed),
            **({"evaluation": metrics} if metrics else {}),
        }
        save_model(self.out / "model.safetensors", self.ae, training=training)

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
        from fadercli.media.grids import tile

        rows = self.dataset.val[: self.config.previews]
        if not self.dist.main or len(rows) == 0:
            return
        self.ae.eval()
        x = from_uint8(self.dataset.cache.read(rows), self.device)
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
        as_uint8 = [to_uint8(c) for c in columns]
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
            last = (
                last
                or now >= self.deadline
                or (self.step_seconds is not None and self._share(now + self.step_seconds) >= 1)
            )
        return (1.0 if last else min(1.0, max(by_steps, by_time))), last

    def _share(self, t: float) -> float:
        """Progress by time at `t`: the rest of the schedules laid over the time left at the start."""
        span = max(self.deadline - self.start, 1e-9)
        return self.start_progress + (1 - self.start_progress) * (t - self.start) / span


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

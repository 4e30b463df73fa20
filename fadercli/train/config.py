"""Every knob of a training run, declared once: TrainConfig's fields carry their help text and the
help panel they show in, and `fader train`'s options are made from them (cli/train.py). The
presets fill the knobs left as None from the image size (docs/experiments.md says how they were
chosen). Pure Python: `fader --help` reads this without importing torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from fadercli.choices import LR_SCHEDULES, PRECISIONS, UPSAMPLE_METHODS
from fadercli.errors import UsageError

if TYPE_CHECKING:
    from fadercli.attributes import AttributeSet
    from fadercli.net.model import FaderConfig

RUN, MODEL, OPTIM = "Run", "Model (FACTS.md names; default by image size)", "Optimisation"


def knob(
    default: Any, help: str, panel: str = OPTIM, flag: str | None = None, choices: tuple[str, ...] | None = None
) -> Any:
    """A TrainConfig field that `fader train` offers as an option (`flag` names it when its name does not;
    `choices` are the values it takes, listed by help and completion)."""
    return field(default=default, metadata={"help": help, "panel": panel, "flag": flag, "choices": choices})


@dataclass
class TrainConfig:
    """Every knob of a run. None means "chosen from the image size and run length" (see resolved())."""

    img_size: int = knob(64, "Model resolution: 32, 64, 128 or 256.", "Data")
    batch_size: int = knob(32, "Images per step (over all processes).", RUN)
    max_steps: int | None = knob(None, "Stop after this many steps.", RUN)
    max_minutes: float | None = knob(
        None, "Stop cleanly after this much wall time (data preparation included) and save.", RUN
    )
    seed: int = knob(0, "Seed for the split, data order and weights.", RUN)
    precision: str = knob(
        "auto",
        "The arithmetic of the steps: auto is bfloat16 autocast where the hardware computes it natively (CUDA,"
        " CPUs with AVX-512 BF16 or AMX), float16 with a gradient scaler on older GPUs, float32 elsewhere.",
        RUN,
        choices=PRECISIONS,
    )
    val_fraction: float = knob(0.05, "Share of images held out for validation.", "Data")
    init_fm: int | None = knob(None, "Feature maps of the first conv block.", MODEL)
    max_fm: int | None = knob(None, "Cap on feature maps.", MODEL)
    n_layers: int | None = knob(None, "Encoder/decoder blocks.", MODEL)
    n_skip: int = knob(0, "Encoder-to-decoder skip connections.", MODEL)
    upsample: str = knob("convtranspose", "How the decoder doubles its resolution.", MODEL, choices=UPSAMPLE_METHODS)
    instance_norm: bool = knob(False, "Instance norm instead of batch norm.", MODEL)
    dec_dropout: float = knob(0.0, "Decoder dropout.", MODEL)
    hid_dim: int = knob(512, "Latent discriminator hidden units.", MODEL)
    lat_dis_dropout: float = knob(0.3, "Latent discriminator dropout.", MODEL)
    lr: float | None = knob(None, "Autoencoder learning rate (Adam).")
    dis_lr: float | None = knob(None, "Latent discriminator learning rate.")
    lr_schedule: str | None = knob(
        None, "constant, or cosine: down to --lr-final times the rate by the end.", choices=LR_SCHEDULES
    )
    lr_final: float = knob(0.1, "Where the cosine schedule ends, as a share of the learning rate.")
    beta1: float = knob(0.5, "Adam beta1.")
    beta2: float = knob(0.999, "Adam beta2.")
    clip_grad_norm: float = knob(5.0, "Gradient-norm clipping (0: off).")
    lambda_ae: float = knob(1.0, "Reconstruction weight.")
    lambda_lat_dis: float | None = knob(None, "Final weight of the adversarial term.")
    lambda_ramp: float = knob(0.3, "Share of the run over which that weight rises from 0.")
    lambda_clf: float | None = knob(None, "Weight of the classifier loss on decodes with random attributes (0: off).")
    clf_share: float = knob(0.25, "Share of each batch the classifier loss decodes with other attributes.")
    dis_steps: int = knob(1, "Latent discriminator updates per autoencoder step.")
    flip: bool = knob(True, "Random horizontal flips of the training images.", flag="--flip/--no-flip")
    clf_steps: int | None = knob(None, "Steps to train the evaluation (and guide) classifier.")
    # Smiles are learnt late: a classifier needs some 60,000 faces seen (docs/experiments.md).
    clf_batch: int = knob(64, "Faces per step of the evaluation (and guide) classifier.")
    clf_budget: float = knob(
        0.2, "With --max-minutes: the classifiers' share of the time at most (fewer steps if needed)."
    )
    checkpoint_every: int = knob(0, "Checkpoint every N steps (0: every --checkpoint-minutes).", RUN)
    checkpoint_minutes: float = knob(10.0, "Minutes between checkpoints.", RUN)
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
        from fadercli.net.model import FaderConfig

        try:
            return FaderConfig(
                attributes.pairs(),
                img_size=self.img_size,
                init_fm=self.init_fm,
                max_fm=self.max_fm,
                n_layers=self.n_layers,
                n_skip=self.n_skip,
                upsample=self.upsample,
                instance_norm=self.instance_norm,
                dec_dropout=self.dec_dropout,
                hid_dim=self.hid_dim,
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

"""The fixed values options take, importable without any heavy library: the command line lists
them in its help and in shell completion, and the modules that act on them check against the same
names, so each list is declared once."""

from __future__ import annotations

# `--format`: image formats fader writes (case-insensitive; jpg and jpeg, tif and tiff, heic and heif
# the same; heic needs the `heif` extra).
IMAGE_FORMATS = ("png", "jpg", "jpeg", "webp", "avif", "heic", "heif", "tiff", "tif", "bmp", "gif", "ppm")
# `--preset`: H.264's speed/size trade-offs, fastest first (VP9 gets a matching speed).
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
# `fader demo --style`: the toy faces' sampling configurations (train/toyfaces.py's STYLES).
TOY_STYLES = ("mixed", "clean", "plain", "thin", "heldout")
# `--upsample`: how the decoder doubles its resolution (net/model.py).
UPSAMPLE_METHODS = ("convtranspose", "upsampling", "pixelshuffle")
# `--lr-schedule`: constant, or a cosine down to --lr-final.
LR_SCHEDULES = ("constant", "cosine")
# `fader train --crop`: none, or the authors' crop of CelebA's aligned images.
TRAINING_CROPS = ("none", "celeba")
# `--precision`: auto (the fastest the hardware does natively), or one of the arithmetics.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# `--device`: these, or cuda:N.
DEVICES = ("auto", "cpu", "cuda", "mps")
# `--face`: these, or an index (0 = the largest face).
FACES = ("all", "largest")

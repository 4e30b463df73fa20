"""Peak RSS of training over a whole epoch of N random 256 px images (printed in KiB).

    python benchmarks/rss_probe.py N FOLDER [SIZE]

Used by benchmarks/training.py and tests/test_train.py: the same run at 1x and 10x the images
must peak at the same memory, since the image cache is read, not loaded.
"""

import resource
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fadercli.attributes import AttributeSet  # noqa: E402
from fadercli.train.config import TrainConfig  # noqa: E402
from fadercli.train.data import Dataset  # noqa: E402
from fadercli.train.images import ImageCache  # noqa: E402
from fadercli.train.run import train  # noqa: E402


def peak_kib() -> int:
    """This process's own peak RSS. Linux's ru_maxrss keeps the parent's peak across fork + exec
    (a probe started from a big process would report the parent), VmHWM starts afresh at exec."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


n, folder = int(sys.argv[1]), Path(sys.argv[2])
folder.mkdir(parents=True)
size = int(sys.argv[3]) if len(sys.argv) > 3 else 256  # 10x the images adds 354 MB: far above allocator noise
rng = np.random.default_rng(0)
with open(folder / "images.u8", "wb") as f:  # the cache's layout, written in slices
    for start in range(0, n, 100):
        f.write(rng.integers(0, 256, (min(100, n - start), size, size, 3), dtype=np.uint8).tobytes())
cache = ImageCache(folder, [f"{i}.png" for i in range(n)], [None] * n, size)
labels = (rng.random((n, 1)) < 0.5).astype(np.int64)
rows = np.arange(n)
dataset = Dataset("random", cache, AttributeSet.binary(["A"]), labels, rows[n // 10 :], rows[: n // 10])
config = TrainConfig(
    img_size=size,
    init_fm=4,
    max_fm=8,
    n_layers=4,
    hid_dim=8,
    batch_size=50,
    max_steps=40,
    clf_steps=2,
    previews=0,  # the same run length at any size: a whole epoch at 2,000
)
train(dataset, config, folder / "run", device=torch.device("cpu"), show_progress=False, log=lambda m: None)
print(peak_kib())

"""`fader edit` on one machine against `fader edit --engine ray` on a local Ray instance, same images.

    python benchmarks/ray_edit.py [--images 400] [--actors 2] [--threads-per-actor 1]

Makes N toy faces (64 px PNGs) and a 64 px model with random weights (the cost of an edit does not
depend on what the weights learnt), then times whole `fader edit DIR --no-align --set Smiling=1
--out-dir OUT` processes: the plain path (torch's threads on every core) and the Ray path, each on
1 image (its fixed cost: start-up, model load, Ray's actors) and on all N. It prints wall time,
the fixed cost, the per-image rate past it, and the peak memory of the whole process tree (the
driver, Ray's daemons and its actors, sampled every 0.2 s), and checks the outputs are identical.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants, from /proc (Linux)."""
    parents, rss = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            parents[pid], rss[pid] = int(fields[1]), int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(rss.get(pid, 0) for pid in tree)


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak MB of the process tree) of a command that must succeed."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.2):
            peak = max(peak, tree_rss(child.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = child.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{err[-2000:]}")
    return seconds, peak / 2**20


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--threads-per-actor", type=int, default=1)
    args = parser.parse_args()

    import torch

    from fadercli.net.model import AutoEncoder, FaderConfig
    from fadercli.train import toyfaces
    from fadercli.weights.format import save_model

    work = Path(tempfile.mkdtemp(prefix="fader-ray-bench-"))
    toyfaces.write_dataset(work / "faces", args.images, size=64, seed=7, attributes=("Smiling",))
    one = work / "one"
    one.mkdir()
    faces = work / "faces" / "images"
    first = sorted(faces.glob("*.png"))[0]
    (one / first.name).write_bytes(first.read_bytes())
    torch.manual_seed(0)
    model = work / "model.safetensors"
    save_model(model, AutoEncoder(FaderConfig(img_size=64, attributes=(("Smiling", 2),))).eval())
    fader = [sys.executable, "-m", "fadercli", "edit", "--no-align", "--set", "Smiling=1", "-m", str(model), "-q"]
    ray = ["--engine", "ray", "--actors", str(args.actors), "--threads-per-actor", str(args.threads_per_actor)]
    results = {}
    for name, extra in (("plain", []), ("ray", ray)):
        small = timed([*fader, str(one), "--out-dir", str(work / f"{name}-1"), *extra])
        large = timed([*fader, str(faces), "--out-dir", str(work / name), *extra])
        results[name] = (small, large)
    print(
        f"{args.images} toy faces of 64 px, model 64 px; Ray: {args.actors} actors x {args.threads_per_actor} thread(s)"
    )
    print(f"{'path':<6} {'wall (N)':>9} {'fixed (1 image)':>16} {'ms/image past it':>17} {'peak MB':>8}")
    for name, ((small, _), (large, peak)) in results.items():
        rate = (large - small) / (args.images - 1) * 1000
        print(f"{name:<6} {large:>8.1f}s {small:>15.1f}s {rate:>16.1f} {peak:>8.0f}")
    (plain_small, _), (plain_large, _) = results["plain"]
    (ray_small, _), (ray_large, _) = results["ray"]
    print(f"ray / plain: wall {ray_large / plain_large:.2f}x, fixed cost +{ray_small - plain_small:.1f} s")
    same = digest(work / "plain") == digest(work / "ray")
    print(f"outputs identical: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

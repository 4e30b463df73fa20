"""`fader serve`'s camera: edited frames per second and their round trip, for 1 and 4 clients.

Runs `fader serve` as a process on a free port with models of random weights (untrained, of the
right architectures: the authors' 256 px one, and a 64 px model as `fader train` builds one; the
time a frame takes does not depend on what the weights learnt), and drives its WebSocket
(`/api/camera`) from Python clients that behave as the page does: frames of the test portrait
panning back and forth, scaled to the `side` the server asks for and encoded as JPEGs beforehand
(the browser's work), sent with a slider value so every face is edited, at most two unanswered
and at most the server's frame rate; each reply's JPEG is decoded (as the page does). A frame's
round trip runs from its send to its decoded reply. The first WARMUP seconds are left out.

Baseline, timed in the same run: the same frames edited in this process by `Fader.live()` on the
same torch threads, with no socket, JPEG or queue: the ratio is what serving costs on top.

    python benchmarks/camera.py [--quick] [--threads 2]

One client runs on `--workers 1 --threads T` (its frames are edited one at a time, so one worker
with all T threads); four on `--workers 2 --threads T/2`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image
from serve import YUNET, Server, make_models, percentile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from clips import frames  # noqa: E402

WARMUP = 2.0
MOVES = 24  # frames of the pan, played forwards and back


def pictures(size: tuple[int, int], face: float = 0.4) -> list[np.ndarray]:
    """The test portrait panning forwards and back, its face `face` of the height."""
    pan = list(frames(MOVES, size, "pan", face))
    return pan + pan[::-1]


def encoded(pictures: list[np.ndarray]) -> list[bytes]:
    out = []
    for rgb in pictures:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, "JPEG", quality=85)  # the page's toBlob quality
        out.append(buffer.getvalue())
    return out


def unpack(message: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack_from(">I", message)
    return json.loads(message[4 : 4 + length]), message[4 + length :]


def client(
    url: str,
    seconds: float,
    results: list,
    lock: threading.Lock,
    size: tuple[int, int] | None = None,
    face: float = 0.4,
) -> None:
    """The page's loop: at most two frames unanswered, at most `fps` a second; round trips after
    WARMUP. Frames 4:3 at the server's side, and at the sides it asks for later (as the page sends
    them, from a camera as large as need be), or of `size` whatever it asks."""
    from websockets.sync.client import connect

    with connect(url, max_size=None, compression=None, open_timeout=30) as socket:
        hello = json.loads(socket.recv())
        sized: dict[int, list[bytes]] = {}

        def at(side: int) -> list[bytes]:
            if side not in sized:
                sized[side] = encoded(pictures(size or (side, side * 3 // 4), face))
            return sized[side]

        jpegs, sides = at(hello["side"]), [hello["side"]]
        sent, trips, shown, edited, dropped, errors = {}, [], 0, 0, 0, []
        started = last = time.perf_counter()
        seq, gap = 0, 1 / hello["fps"]
        while True:
            now = time.perf_counter()
            sending = now - started < seconds
            if not sending and not sent:
                break
            if sending and len(sent) < 2 and now - last >= gap:
                header = json.dumps({"seq": seq, "values": {"Smiling": 1.5}}).encode()
                socket.send(struct.pack(">I", len(header)) + header + jpegs[seq % len(jpegs)])
                sent[seq], last, seq = now, now, seq + 1
                continue
            try:  # a reply, or the time to send the next frame
                message = socket.recv(timeout=max(0.001, last + gap - now) if sending and len(sent) < 2 else 60)
            except TimeoutError:
                continue
            if isinstance(message, str):  # the server asks for frames of another size
                sides.append(json.loads(message)["side"])
                jpegs = at(sides[-1])
                continue
            header, body = unpack(message)
            when = sent.pop(header["seq"])
            if "error" in header:
                errors.append(header)
                continue
            if header.get("dropped"):
                dropped += 1
                continue
            Image.open(io.BytesIO(body)).load()
            if when - started >= WARMUP:
                trips.append(time.perf_counter() - when)
                shown += 1
                edited += any(face["values"] for face in header["faces"])
    with lock:
        results.append(
            {
                "trips": trips,
                "shown": shown,
                "edited": edited,
                "dropped": dropped,
                "errors": errors,
                "sides": sides,
                "seconds": seconds - WARMUP,
            }
        )


def run_clients(server: Server, n: int, seconds: float) -> dict:
    url = server.url.replace("http://", "ws://") + "api/camera"
    results, lock = [], threading.Lock()
    threads = [threading.Thread(target=client, args=(url, seconds, results, lock)) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(results) != n:
        raise SystemExit("a client failed (see above)")
    if any(r["errors"] for r in results):
        raise SystemExit(f"the server answered errors: {[r['errors'][:3] for r in results]}")
    trips = [t for r in results for t in r["trips"]]
    return {
        "fps": statistics.mean(r["shown"] / r["seconds"] for r in results),
        "p50": statistics.median(trips),
        "p95": percentile(trips, 0.95),
        "dropped": sum(r["dropped"] for r in results),
        "edited": sum(r["edited"] for r in results) / max(1, sum(r["shown"] for r in results)),
    }


def in_process(model: Path, threads: int, seconds: float) -> float:
    """Frames per second of Fader.live() on the same frames, in this process: the baseline."""
    import cv2
    import torch

    from fadercli.api import Fader
    from fadercli.serve.camera import side_for

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)  # as the server sets them
    fader = Fader.load(str(model), device="cpu", quiet=True)
    live = fader.live()
    side = side_for(fader.chain.size)
    rgbs = pictures((side, side * 3 // 4))
    count, started, found = 0, time.perf_counter(), False
    while time.perf_counter() - started < WARMUP or not found:  # the face found beside the stream, and edited
        found = any(f.values for f in live.edit(rgbs[count % len(rgbs)], {"Smiling": 1.5}).faces)
        count += 1
        time.sleep(0.001)  # not a loop so tight that the detection's thread waits for a core
    measured, begun = 0, time.perf_counter()
    while time.perf_counter() - begun < seconds:
        live.edit(rgbs[(count + measured) % len(rgbs)], {"Smiling": 1.5})
        measured += 1
    return measured / (time.perf_counter() - begun)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in all (default 2)")
    args = parser.parse_args()
    seconds = 6.0 if args.quick else 20.0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = dict(os.environ, FADER_HOME=str(folder / "home"), FADER_DETECTOR_MODEL=str(YUNET))
        env.pop("OMP_NUM_THREADS", None)  # the server is given its threads
        os.environ["FADER_DETECTOR_MODEL"] = str(YUNET)
        models = make_models(folder)
        print(
            f"cores: {os.cpu_count()}; {args.threads} torch threads in all; {seconds - WARMUP:g} s measured per run"
            f" after {WARMUP:g} s; the test portrait panning; models of random weights"
        )
        for name, model in sorted(models.items(), key=lambda item: item[1].name):
            baseline = in_process(model, args.threads, seconds - WARMUP)
            print(f"\n{name}: Fader.live() in process {baseline:5.1f} frames/s (baseline)")
            for n, workers in ((1, 1), (4, 2)):
                threads = max(1, args.threads // workers)
                server = Server(model, env, "--workers", str(workers), "--threads", str(threads), "--cameras", "4")
                try:
                    result = run_clients(server, n, seconds)
                finally:
                    server.close()
                print(
                    f"  {n} client{'s' if n > 1 else ' '} (--workers {workers} --threads {threads}):"
                    f" {result['fps']:5.1f} frames/s each ({result['fps'] * n / baseline:.2f}x the baseline in all),"
                    f" round trip p50 {result['p50'] * 1000:4.0f} ms, p95 {result['p95'] * 1000:4.0f} ms,"
                    f" {result['dropped']} dropped, {result['edited']:.0%} with the face edited"
                )


if __name__ == "__main__":
    main()

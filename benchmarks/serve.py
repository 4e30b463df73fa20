"""`fader serve`: how long one slider update takes, against `fader edit` of the same photo as a process.

Runs `fader serve` as a process on a free port with models of random weights (the authors' 256 px
architecture, FaderConfig's defaults, and a 64 px model as `fader train` builds one), uploads the
test portrait and measures, over HTTP on loopback:

- one slider update (the page's request: a JPEG preview): server time (X-Render-Seconds) and
  round trip, p50 / p95, against `fader edit` of the photo as a new process (the baseline), with
  the server at `--precision fp32` and at `--precision auto` (bfloat16 on a CPU with AVX-512 BF16
  or AMX), the two started in turn for each model;
- updates per second during a simulated drag: the page's loop (one request in flight, the slider
  moving every 16 ms, the newest value sent when the last render is back);
- 8 clients at once for 30 s, each with its own upload: errors, round-trip p50 / p95, renders/s;
- the server's resident memory after 200 uploads (sampled every 25; the cache holds 32 photos).

    python benchmarks/serve.py [--quick]      # figures for README; --quick: fewer, shorter
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests" / "data" / "astronaut.png"
YUNET = ROOT / "tests" / "data" / "face_detection_yunet_2026may.onnx"


def make_models(folder: Path) -> dict[str, Path]:
    import torch

    from fadercli.net.model import AutoEncoder, FaderConfig
    from fadercli.weights.format import save_model

    torch.manual_seed(0)
    configs = {
        "256 px (authors' architecture)": FaderConfig(attributes=(("Smiling", 2),)),
        "64 px (fader train's preset)": FaderConfig(
            attributes=(("Smiling", 2),), img_size=64, init_fm=16, max_fm=256, n_layers=5
        ),
    }
    paths = {}
    for name, config in configs.items():
        model = AutoEncoder(config).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(0.5)  # random but tame: decodes that vary with the slider
        path = folder / f"{config.img_size}.safetensors"
        save_model(path, model, slider_ranges={"Smiling": (-1.0, 2.0)})
        paths[name] = path
    return paths


class Server:
    def __init__(self, model: Path, env: dict, *extra: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fadercli", "serve", "--model", str(model), "--port", "0", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise SystemExit(f"fader serve did not start: {self.process.stderr.read()}")

    def rss_mb(self) -> tuple[float, float]:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def close(self) -> None:
        self.process.send_signal(2)
        self.process.wait(timeout=30)


_connections = threading.local()


def request(url: str, body: bytes, content_type: str) -> tuple[int, bytes, dict, float]:
    """POST on this thread's kept-alive connection (as a browser keeps one), timed."""
    parts = urllib.parse.urlsplit(url)
    started = time.perf_counter()
    connection = getattr(_connections, parts.netloc, None)
    if connection is None:
        connection = http.client.HTTPConnection(parts.netloc, timeout=120)
        setattr(_connections, parts.netloc, connection)
    connection.request("POST", parts.path, body, {"Content-Type": content_type})
    response = connection.getresponse()
    data = response.read()
    return response.status, data, {k.lower(): v for k, v in response.getheaders()}, time.perf_counter() - started


def post_photo(url: str, data: bytes, name: str, content_type: str) -> tuple[int, bytes, float]:
    """POST /api/photos with the file as the page sends it: status, answer, seconds."""
    boundary = "fader-benchmark"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, answer, _, seconds = request(f"{url}api/photos", body, f"multipart/form-data; boundary={boundary}")
    return status, answer, seconds


def upload(url: str) -> dict:
    status, data, _ = post_photo(url, PHOTO.read_bytes(), "astronaut.png", "image/png")
    if status != 201:
        raise SystemExit(f"upload failed: {status} {data[:200]!r}")
    return json.loads(data)


def render(url: str, photo: str, value: float, supersede: bool = False) -> tuple[int, float, float]:
    body = json.dumps(
        {"faces": {"0": {"Smiling": value}}, "format": "jpeg", "max_size": 1024, "quality": 90, "supersede": supersede}
    ).encode()
    status, _, headers, seconds = request(f"{url}api/photos/{photo}/render", body, "application/json")
    return status, float(headers.get("x-render-seconds", "nan")), seconds


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(server: Server, n: int) -> dict:
    photo = upload(server.url)["id"]
    for v in (0.0, 1.0):
        render(server.url, photo, v)  # warm up
    server_times, trips = [], []
    for i in range(n):
        status, server_s, trip = render(server.url, photo, -1 + 3 * i / (n - 1))
        assert status == 200, status
        server_times.append(server_s)
        trips.append(trip)
    return {
        "server_p50": statistics.median(server_times),
        "server_p95": percentile(server_times, 0.95),
        "trip_p50": statistics.median(trips),
        "trip_p95": percentile(trips, 0.95),
    }


def slide(url: str, photo: str, seconds: float) -> list[tuple[int, float]]:
    """The page's loop for one drag of a slider across its range: the thumb moves every 16 ms; when
    a render is back, the newest value goes (`supersede`). Each render's status and round trip."""
    started, answers = time.perf_counter(), []
    while (now := time.perf_counter()) - started < seconds:
        value = -1 + 3 * ((now - started) / seconds)  # where the thumb is now
        status, _, trip = render(url, photo, round(value / 0.015) * 0.015, supersede=True)
        answers.append((status, trip))
    return answers


def drag(server: Server, seconds: float) -> float:
    """Renders a second during a drag."""
    photo = upload(server.url)["id"]
    started = time.perf_counter()
    done = sum(status == 200 for status, _ in slide(server.url, photo, seconds))
    return done / (time.perf_counter() - started)


def clients(server: Server, n: int, seconds: float) -> dict:
    photos = [upload(server.url)["id"] for _ in range(n)]
    trips, errors, lock = [], [], threading.Lock()

    def client(photo: str, seed: int) -> None:
        rng = random.Random(seed)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            status, _, trip = render(server.url, photo, rng.uniform(-1, 2))
            with lock:
                (trips if status == 200 else errors).append(trip if status == 200 else status)

    threads = [threading.Thread(target=client, args=(p, i)) for i, p in enumerate(photos)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {
        "errors": len(errors),
        "renders": len(trips),
        "per_second": len(trips) / elapsed,
        "trip_p50": statistics.median(trips),
        "trip_p95": percentile(trips, 0.95),
    }


def uploads(server: Server, n: int) -> list[tuple[int, float, float]]:
    samples = []
    for i in range(1, n + 1):
        upload(server.url)
        if i % 25 == 0:
            samples.append((i, *server.rss_mb()))
    return samples


def fader_edit(model: Path, env: dict, out: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "fadercli",
                "edit",
                str(PHOTO),
                "--model",
                str(model),
                "--set",
                "Smiling=1.5",
                "-o",
                str(out),
                "--force",
                "-q",
            ],
            check=True,
            env=env,
            capture_output=True,
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer updates, shorter runs")
    args = parser.parse_args()
    n, drag_s, clients_s, n_uploads = (15, 3, 8, 50) if args.quick else (40, 6, 30, 200)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = dict(os.environ, FADER_HOME=str(folder / "home"), FADER_DETECTOR_MODEL=str(YUNET))
        env.pop("OMP_NUM_THREADS", None)  # the server sets its own threads (cores / workers)
        models = make_models(folder)
        print(f"cores: {os.cpu_count()}; photo: {PHOTO.name} (512 x 512, one face); update = JPEG preview")
        for name, model in models.items():
            baseline = fader_edit(model, env, folder / "out.png", 3)
            print(f"\n{name}")
            print(f"  fader edit as a process      {baseline * 1000:8.0f} ms")
            trips = {}
            for precision in ("fp32", "auto"):
                server = Server(model, env, "--precision", precision)
                try:
                    lat = latency(server, n)
                    rate = drag(server, drag_s)
                finally:
                    server.close()
                trips[precision] = lat["trip_p50"]
                print(f"  --precision {precision}")
                print(
                    f"    one slider update, server    p50 {lat['server_p50'] * 1000:6.1f} ms"
                    f"   p95 {lat['server_p95'] * 1000:6.1f} ms"
                )
                print(
                    f"    one slider update, round trip p50 {lat['trip_p50'] * 1000:6.1f} ms"
                    f"   p95 {lat['trip_p95'] * 1000:6.1f} ms   ({baseline / lat['trip_p50']:.0f}x faster than fader edit)"
                )
                print(f"    updates/s during a drag      {rate:8.1f}")
            print(f"  round trip p50, fp32 / auto:  {trips['fp32'] / trips['auto']:.2f}x")
        model = models["256 px (authors' architecture)"]
        server = Server(model, env)
        try:
            busy = clients(server, 8, clients_s)
        finally:
            server.close()
        print(
            f"\n8 clients for {clients_s:g} s (256 px): {busy['errors']} errors, {busy['renders']} renders"
            f" ({busy['per_second']:.1f}/s), round trip p50 {busy['trip_p50'] * 1000:.0f} ms, p95 {busy['trip_p95'] * 1000:.0f} ms"
        )
        server = Server(models["64 px (fader train's preset)"], env)
        try:
            samples = uploads(server, n_uploads)
        finally:
            server.close()
        print(f"\nresident memory during {n_uploads} uploads (64 px model, --cache-photos 32):")
        for i, rss, peak in samples:
            print(f"  after {i:3d}: {rss:6.0f} MB (peak so far {peak:.0f} MB)")


if __name__ == "__main__":
    main()

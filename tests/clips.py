"""Short test clips made with PyAV from the test portrait: a camera that holds still, pans, zooms or
turns, with a sine tone, odd sizes and rotation metadata (used by tests/test_video*.py and
benchmarks/video.py)."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "tests" / "data" / "astronaut.png"
FACE_CENTRE = (224.0, 118.0)  # the portrait's face, in its 512 x 512 pixels


def portrait() -> np.ndarray:
    return np.asarray(Image.open(ASTRONAUT).convert("RGB"))


def camera(t: int, size: tuple[int, int], motion: str, face: float) -> np.ndarray:
    """The 2x3 matrix taking portrait pixels to frame t's: the face `face` of the frame's height
    tall, centred; then moved as `motion` says (still, pan, zoom, turn)."""
    w, h = size
    scale = face * h / 120  # the portrait's face is about 120 px tall
    angle, dx = 0.0, 0.0
    if motion == "pan":
        dx = (t - 6) * 0.01 * w
    elif motion == "zoom":
        scale *= 1 + 0.02 * t
    elif motion == "turn":
        angle = 1.5 * t  # degrees per frame
    elif motion != "still":
        raise ValueError(motion)
    m = cv2.getRotationMatrix2D(FACE_CENTRE, angle, scale)
    m[:, 2] += (w / 2 + dx - FACE_CENTRE[0], h / 2 - FACE_CENTRE[1])
    return m


def frames(
    n: int,
    size: tuple[int, int],
    motion: str = "still",
    face: float = 0.4,
    cut: int | None = None,
    *,
    soft: bool = False,
):
    """n RGB frames (with `cut`, frames from there on show a picture without a face). `soft`: as a
    cheap webcam shows a face far from it: blurred, half the contrast, a fresh sensor grain every
    frame, and the edges repeated rather than mirrored (a small face mirrored would be several)."""
    source = portrait()
    other = np.asarray(Image.open(ASTRONAUT.parent / "coffee.png").convert("RGB"))
    grain = np.random.default_rng(0)
    for t in range(n):
        if cut is not None and t >= cut:
            yield np.ascontiguousarray(cv2.resize(other, size, interpolation=cv2.INTER_AREA))
        elif soft:
            sharp = cv2.warpAffine(
                source, camera(t, size, motion, face), size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
            ).astype(np.float32)
            picture = cv2.GaussianBlur(sharp.mean() + 0.5 * (sharp - sharp.mean()), (0, 0), 1.4)
            yield np.clip(picture + grain.normal(0, 6, (*picture.shape[:2], 1)), 0, 255).astype(np.uint8)
        else:
            yield cv2.warpAffine(
                source, camera(t, size, motion, face), size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
            )


def make_clip(
    path: Path,
    n: int = 12,
    size: tuple[int, int] = (192, 144),
    *,
    motion: str = "still",
    fps: int = 25,
    audio: bool = False,
    rotation: int = 0,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    face: float = 0.4,
    cut: int | None = None,
    pictures=None,
    subtitles: tuple[str, ...] = (),
) -> Path:
    """A clip of `n` frames as displayed `size`; `rotation` stores them turned, with a display matrix
    that turns them back; `audio` adds a 440 Hz tone (AAC, or Opus in WebM) as long as the video;
    `subtitles` SubRip lines, one every 0.1 s (Matroska)."""
    # Faststart: the index at the front, so a truncated MP4 still opens (and is seen to be short).
    container = av.open(str(path), "w", options={"movflags": "+faststart"} if path.suffix in (".mp4", ".mov") else {})
    video = container.add_stream(codec, rate=Fraction(fps), options={"crf": "18"} if codec == "libx264" else {})
    w, h = size
    video.width, video.height = (h, w) if rotation in (90, 270) else (w, h)
    video.pix_fmt = pix_fmt
    if rotation:
        video.set_display_rotation(rotation)
    sound = None
    if audio:
        sound = container.add_stream(
            "libopus" if path.suffix == ".webm" else "aac", rate=48000 if path.suffix == ".webm" else 16000
        )
        sound.layout = "mono"
    text = None
    if subtitles:
        text = container.add_mux_stream("subrip")  # packets muxed as they are: no encoder
        text.time_base = Fraction(1, 1000)
    for t, picture in enumerate(pictures if pictures is not None else frames(n, size, motion, face, cut)):
        stored = np.ascontiguousarray(np.rot90(picture, -rotation // 90)) if rotation else picture
        frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
        frame.pts = t
        container.mux(video.encode(frame))
    container.mux(video.encode(None))
    for k, line in enumerate(subtitles):
        packet = av.Packet(line.encode())
        packet.stream, packet.time_base = text, Fraction(1, 1000)
        packet.pts = packet.dts = 100 * k
        packet.duration = 90
        container.mux(packet)
    if sound is not None:
        rate = sound.rate
        chunk = 960 if path.suffix == ".webm" else 1024
        total = int(rate * n / fps)
        for start in range(0, total, chunk):
            k = np.arange(start, min(start + chunk, total))
            samples = (0.3 * np.sin(2 * math.pi * 440 * k / rate)).astype(np.float32)[None]
            if samples.shape[1] < chunk:
                samples = np.pad(samples, ((0, 0), (0, chunk - samples.shape[1])))
            piece = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            piece.sample_rate, piece.pts = rate, start
            container.mux(sound.encode(piece))
        container.mux(sound.encode(None))
    container.close()
    return path


def read_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a clip, as stored (not turned by its display matrix), uint8 RGB."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def packets(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == kind]
        return [bytes(p) for p in container.demux(streams) if p.size] if streams else []  # demux([]): all


def reencode(src: Path, dst: Path, crf: int = 18, preset: str = "medium") -> Path:
    """The clip's frames re-encoded as fader encodes them (what an edit is compared with away from faces)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        video = out.add_stream("libx264", rate=stream.average_rate, options={"crf": str(crf), "preset": preset})
        video.width, video.height, video.pix_fmt = stream.width, stream.height, "yuv420p"
        video.codec_context.time_base = stream.time_base
        for frame in inp.decode(stream):
            frame.pict_type = 0
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return dst

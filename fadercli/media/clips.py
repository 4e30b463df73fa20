"""Reading clips with PyAV (FFmpeg's libraries inside the wheel: no system ffmpeg).

`probe` opens a clip through the gate (`open_clip`: the file protocol, allowed demuxers, a pixel
limit per frame) and checks that it can be edited (a video stream whose codec decodes; not an
audio file, not a cover picture); `decode` streams its frames, and a `Reader` with `copy` the
packets of its audio and subtitle streams too, in file order. Corrupt data is an InputError
unless `partial` (then the frames that decode are the clip); `shortfall` says when the frames
that decode fall short of what the container declares (a truncated file). Writing is encoder.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from fadercli.errors import InputError, import_extra
from fadercli.limits import DEFAULT as DEFAULT_LIMITS
from fadercli.limits import Limits

av = import_extra("av", "video")

# The demuxers a clip may be read with (FFmpeg's names). Left out: those that open other files or
# URLs named inside the clip (HLS, DASH, concat lists, image sequences) and raw guesses, so that
# a playlist named .mp4 cannot make FFmpeg read anything but the file given.
DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpeg,mpegts,asf,flv,ogg,nut,mxf,yuv4mpegpipe"

# 4:2:0 layouts whose planes go to the encoder as they are (yuvj420p: the same, in full range).
PLANAR_420 = ("yuv420p", "yuvj420p")
FULL_RANGE = 2  # AVCOL_RANGE_JPEG


@dataclass(frozen=True)
class ClipInfo:
    """What a clip declares, and its first frame's rotation and colour tags."""

    path: Path
    index: int  # the video stream's
    width: int  # coded size (before rotation)
    height: int
    rate: Fraction  # frames per second (average)
    time_base: Fraction
    codec: str
    frames: int | None  # as the container declares (None: not said)
    end: float | None  # seconds: where the video stream declares it ends
    rotation: int  # degrees counter-clockwise the picture turns for display: 0, 90, 180 or 270
    display_matrix: tuple[int, ...] | None
    colour: tuple[int, int, int, int]  # colorspace, range, primaries, transfer, as FFmpeg numbers them
    copied: tuple[tuple[int, str, str], ...]  # (stream index, type, codec) of audio and subtitle streams
    max_pixels: int = DEFAULT_LIMITS.max_pixels  # a frame's width x height, checked by the decoder too

    @property
    def display_size(self) -> tuple[int, int]:
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)


def _clock(text: str) -> float | None:
    """HH:MM:SS.fraction -> seconds (None if it is not that)."""
    try:
        h, m, sec = text.split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None


def ffmpeg_reason(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def open_clip(path: Path, max_pixels: int) -> av.container.InputContainer:
    """The gate every clip goes through: the file itself (FFmpeg's file protocol only, never a URL its
    name or contents suggest), read with an allowed demuxer, metadata that is not UTF-8 replaced
    rather than fatal, and decoders told the largest frame they may make."""
    try:
        container = av.open(
            "file:" + str(path.resolve()),
            options={"format_whitelist": DEMUXERS, "protocol_whitelist": "file"},
            metadata_errors="replace",
        )
    except av.error.FFmpegError as e:
        raise InputError(f"{path}: not a video, or a container that cannot be read ({ffmpeg_reason(e)})") from None
    for stream in container.streams.video:
        if stream.codec_context is not None:
            stream.codec_context.options = {"max_pixels": str(max_pixels)}
    return container


def probe(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> ClipInfo:
    """Open a clip and decode its first frame; InputError for anything fader cannot edit (or whose
    frames are over the pixel limit)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a video")
    container = open_clip(path, limits.max_pixels)
    with container:
        videos = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        if not videos:
            kinds = sorted({s.type for s in container.streams})
            if kinds == ["audio"] or (container.streams.video and "audio" in kinds):
                raise InputError(f"{path}: no video stream (audio only)")
            raise InputError(f"{path}: no video stream" + (f" (only {', '.join(kinds)})" if kinds else ""))
        video = videos[0]
        if video.codec_context is None:
            raise InputError(f"{path}: its video codec is unknown to FFmpeg, so it cannot be decoded")
        limits.check_pixels(video.codec_context.width, video.codec_context.height, str(path), "each frame")
        first = next(_demux(container, [video], path, partial=True), None)
        if first is None:
            raise InputError(f"{path}: no video frame decodes")
        frames = video.frames or None
        start = float((video.start_time or 0) * video.time_base)
        end = None
        if video.duration is not None:
            end = start + float(video.duration * video.time_base)
        elif _clock(video.metadata.get("DURATION", "")) is not None:  # Matroska keeps each stream's as a tag
            end = start + _clock(video.metadata["DURATION"])
        rate = video.average_rate or video.guessed_rate or video.base_rate or Fraction(25)
        matrix = None
        try:
            matrix = tuple(int(v) for v in np.frombuffer(bytes(first.side_data["DISPLAYMATRIX"]), np.int32))
        except (KeyError, ValueError):
            pass
        rotation = round((first.rotation or 0) / 90) % 4 * 90 if matrix else 0
        copied = tuple(
            (s.index, s.type, s.codec_context.name)
            for s in container.streams
            if s.type in ("audio", "subtitle") and s.codec_context is not None
        )
        colour = (first.colorspace, first.color_range, first.color_primaries, first.color_trc)
        if first.format.name == "yuvj420p":
            colour = (colour[0], FULL_RANGE, colour[2], colour[3])
        return ClipInfo(
            path,
            video.index,
            first.width,
            first.height,
            Fraction(rate),
            Fraction(video.time_base),
            video.codec_context.name,
            frames,
            end,
            rotation,
            matrix,
            colour,
            copied,
            limits.max_pixels,
        )


def _demux(container, streams: list, path: Path, partial: bool) -> Iterator[av.VideoFrame | av.Packet]:
    """Decoded frames of streams[0], and the packets of the others, in file order."""
    video = streams[0]
    try:
        for packet in container.demux(streams):
            if packet.stream.index != video.index:
                if packet.dts is not None:  # not the flush packet at the end
                    yield packet
                continue
            try:
                frames = video.decode(packet)
            except av.error.FFmpegError as e:
                if partial:
                    continue
                raise InputError(
                    f"{path}: corrupt video data ({ffmpeg_reason(e)}): use --partial for the frames that decode"
                ) from None
            for frame in frames:
                if frame.is_corrupt:
                    if partial:
                        continue
                    raise InputError(
                        f"{path}: a corrupt frame at {_seconds(frame)}: use --partial for the frames that decode"
                    )
                yield frame
    except av.error.FFmpegError as e:
        if not partial:
            raise InputError(
                f"{path}: cannot read on ({ffmpeg_reason(e)}): use --partial for the frames that decode"
            ) from None


def _seconds(frame: av.VideoFrame) -> str:
    return f"{float(frame.time):.2f} s" if frame.time is not None else "an unknown time"


class Reader:
    """An open clip (a context manager): iterating gives its video frames in order and the packets
    of the streams in `copy` (indices of its audio and subtitle streams), in file order."""

    def __init__(self, info: ClipInfo, *, partial: bool = False, copy: Sequence[int] = ()):
        self.info, self.partial, self.copy = info, partial, list(copy)

    def __enter__(self) -> Reader:
        self.container = open_clip(self.info.path, self.info.max_pixels)
        self.video = self.container.streams[self.info.index]
        self.video.thread_type = "AUTO"  # frame threads: the same frames, decoded on several cores
        self.copied = [self.container.streams[i] for i in self.copy]
        return self

    def __exit__(self, *exc) -> None:
        self.container.close()

    def __iter__(self) -> Iterator[av.VideoFrame | av.Packet]:
        return _demux(self.container, [self.video, *self.copied], self.info.path, self.partial)


def decode(info: ClipInfo, *, partial: bool = False) -> Iterator[av.VideoFrame]:
    """The clip's video frames, in order."""
    with Reader(info, partial=partial) as reader:
        yield from reader


def shortfall(info: ClipInfo, frames: int, end: float | None) -> str | None:
    """Why `frames` decoded frames, the last ending at `end` seconds, fall short of what the
    container declares (a truncated file), or None when they do not."""
    if info.frames and frames < info.frames:
        return f"{frames} of {info.frames} frames decode"
    slack = 1.5 / float(info.rate)  # a frame and a half: containers round durations
    if info.end is not None and end is not None and end < info.end - slack:
        return f"frames decode up to {end:.2f} s of {info.end:.2f} s"
    return None


def frame_end(frame: av.VideoFrame, rate: Fraction) -> float | None:
    """Where a frame ends, in seconds (its time plus its duration, else one frame at `rate`)."""
    if frame.pts is None or frame.time_base is None:
        return None
    duration = frame.duration * frame.time_base if frame.duration else 1 / rate
    return float(frame.pts * frame.time_base + duration)


# ---------------------------------------------------------------- pixels


def planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """A decoded frame as its three 8-bit 4:2:0 planes (copies: decoders reuse their buffers)."""
    if frame.format.name not in PLANAR_420:
        frame = frame.reformat(format="yuv420p")
    return [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width].copy() for p in frame.planes]


def rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as H x W x 3 uint8 RGB, through its own colour matrix and range."""
    return frame.to_ndarray(format="rgb24")


def rgb_region(
    frame: av.VideoFrame, yuv: list[np.ndarray], box: tuple[int, int, int, int]
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The box x0, y0, x1, y1 of a decoded frame (as stored; `yuv` its planes) as uint8 RGB, the
    same pixels as that box of `rgb(frame)`, without converting the rest; the box grows to whole
    chroma samples. Returns (pixels, box).

    FFmpeg converts even-sided 4:2:0 pictures chroma sample by chroma sample, so a box of one
    converts as it does within the whole (tests/test_video_inputs.py); other layouts and odd
    sides take another path, whose chroma filter reaches across a box's edge: the whole frame is
    converted for those."""
    x0, y0, x1, y1 = box
    x0, y0 = x0 // 2 * 2, y0 // 2 * 2
    x1, y1 = min(frame.width, x1 + x1 % 2), min(frame.height, y1 + y1 % 2)
    if frame.format.name not in PLANAR_420 or frame.width % 2 or frame.height % 2:
        return rgb(frame)[y0:y1, x0:x1], (x0, y0, x1, y1)
    region = av.VideoFrame(x1 - x0, y1 - y0, frame.format.name)
    for plane, source, sub in zip(region.planes, yuv, (1, 2, 2)):
        target = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        target[:, : plane.width] = source[y0 // sub : y0 // sub + plane.height, x0 // sub : x0 // sub + plane.width]
    region.colorspace, region.color_range = frame.colorspace, frame.color_range
    return rgb(region), (x0, y0, x1, y1)


# ---------------------------------------------------------------- writing

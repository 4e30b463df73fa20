"""Reading and writing clips with PyAV (FFmpeg's libraries inside the wheel: no system ffmpeg).

Reading: `probe` opens a clip and checks that it can be edited (a video stream whose codec
decodes; not an audio file, not a cover picture); `decode` streams its frames, and with `copy`
the packets of its audio and subtitle streams too, in file order. Corrupt data is an InputError
unless `partial` (then the frames that decode are the clip); `shortfall` says when the frames
that decode fall short of what the container declares (a truncated file).

Writing: a `Writer` encodes frames given as YUV planes (H.264 with libx264 in MP4, MOV and
Matroska, or VP9 in WebM; 8-bit 4:2:0) with the input's timestamps, frame rate, display matrix (rotation) and colour tags, and
muxes copied packets as they are, never re-encoded. Pixels an edit leaves alone reach the
encoder exactly as the decoder gave them: only edited regions go through RGB (`merge`).
H.264's 4:2:0 needs even sides: an odd side loses its last row or column.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from fadercli.errors import InputError, OutputError, UsageError
from fadercli.limits import DEFAULT as DEFAULT_LIMITS
from fadercli.limits import Limits
from fadercli.video import WRITABLE

# The demuxers a clip may be read with (FFmpeg's names). Left out: those that open other files or
# URLs named inside the clip (HLS, DASH, concat lists, image sequences) and raw guesses, so that
# a playlist named .mp4 cannot make FFmpeg read anything but the file given.
DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpeg,mpegts,asf,flv,ogg,nut,mxf,yuv4mpegpipe"

# 4:2:0 layouts whose planes go to the encoder as they are (yuvj420p: the same, in full range).
PLANAR_420 = ("yuv420p", "yuvj420p")
FULL_RANGE = 2  # AVCOL_RANGE_JPEG
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
DEFAULT_CRF = {"libx264": 18, "libvpx-vp9": 30}  # near-transparent for a re-encode; VP9's scale is 0..63
CRF_RANGE = {"libx264": (0, 51), "libvpx-vp9": (0, 63)}
# x264's presets -> libvpx's cpu-used (speed 0..8): the same "faster or smaller" choice.
VP9_SPEED = dict(zip(PRESETS, (8, 8, 7, 6, 5, 4, 3, 2, 1)))


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


def _reason(error: Exception) -> str:
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
        raise InputError(f"{path}: not a video, or a container that cannot be read ({_reason(e)})") from None
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
            (s.index, s.type, s.codec_context.name) for s in container.streams
            if s.type in ("audio", "subtitle") and s.codec_context is not None
        )
        colour = (first.colorspace, first.color_range, first.color_primaries, first.color_trc)
        if first.format.name == "yuvj420p":
            colour = (colour[0], FULL_RANGE, colour[2], colour[3])
        return ClipInfo(
            path, video.index, first.width, first.height, Fraction(rate), Fraction(video.time_base),
            video.codec_context.name, frames, end, rotation, matrix, colour, copied, limits.max_pixels,
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
                raise InputError(f"{path}: corrupt video data ({_reason(e)}): use --partial for the frames that decode") from None
            for frame in frames:
                if frame.is_corrupt:
                    if partial:
                        continue
                    raise InputError(f"{path}: a corrupt frame at {_seconds(frame)}: use --partial for the frames that decode")
                yield frame
    except av.error.FFmpegError as e:
        if not partial:
            raise InputError(f"{path}: cannot read on ({_reason(e)}): use --partial for the frames that decode") from None


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


def merge(
    yuv: list[np.ndarray], before: np.ndarray, after: np.ndarray, info: ClipInfo,
    box: tuple[int, int, int, int] | None = None,
) -> None:
    """Carry the pixels an edit changed from RGB `after` (the frame's RGB was `before`; changes only
    inside `box`, x0, y0, x1, y1, if given) into its planes; every pixel it left alone keeps its
    decoded YUV values exactly."""
    h, w = before.shape[:2]
    bx0, by0, bx1, by1 = box or (0, 0, w, h)
    changed = (before[by0:by1, bx0:bx1] != after[by0:by1, bx0:bx1]).any(axis=2)
    rows, cols = np.flatnonzero(changed.any(axis=1)) + by0, np.flatnonzero(changed.any(axis=0)) + bx0
    if not len(rows):
        return
    y0, x0 = rows[0] // 2 * 2, cols[0] // 2 * 2  # whole chroma samples
    y1, x1 = min(h, (rows[-1] + 2) // 2 * 2), min(w, (cols[-1] + 2) // 2 * 2)
    changed = (before[y0:y1, x0:x1] != after[y0:y1, x0:x1]).any(axis=2)
    region = av.VideoFrame.from_ndarray(np.ascontiguousarray(after[y0:y1, x0:x1]), format="rgb24")
    # Back through the matrix and range the frame came with (FFmpeg's colour-space numbers, which
    # PyAV's reformat reads alike for every matrix it converts; unspecified stays BT.601).
    converted = planes(region.reformat(format="yuv420p", dst_colorspace=info.colour[0], dst_color_range=info.colour[1]))
    luma = yuv[0][y0:y1, x0:x1]
    luma[changed] = converted[0][changed]
    # A chroma sample changes where any of the (up to) four pixels it covers does.
    ch, cw = converted[1].shape
    padded = np.zeros((2 * ch, 2 * cw), bool)
    padded[: changed.shape[0], : changed.shape[1]] = changed
    chroma_changed = padded.reshape(ch, 2, cw, 2).any(axis=(1, 3))
    for plane, new in zip(yuv[1:], converted[1:]):
        target = plane[y0 // 2 : y0 // 2 + ch, x0 // 2 : x0 // 2 + cw]
        target[chroma_changed] = new[chroma_changed]


# ---------------------------------------------------------------- writing


def muxer_for(path: str | Path) -> str:
    """FFmpeg's muxer for an output name; UsageError for an extension fader does not write."""
    muxer = WRITABLE.get(Path(path).suffix.lower())
    if muxer is None:
        names = ", ".join(sorted({s for s in WRITABLE}))
        raise UsageError(f"{path}: fader writes video as {names}")
    return muxer


def holds(muxer: str) -> set[str]:
    """The codecs a muxer takes (what can be copied into it)."""
    with av.open(io.BytesIO(), "w", format=muxer) as probe_output:
        return set(probe_output.supported_codecs)


def encoder_for(muxer: str) -> str:
    return "libvpx-vp9" if muxer == "webm" else "libx264"


def check_settings(muxer: str, crf: int | None, preset: str) -> int:
    """The CRF to use (the codec's default if None); UsageError for values the codec does not take."""
    codec = encoder_for(muxer)
    if preset not in PRESETS:
        raise UsageError(f"--preset {preset}: give one of {', '.join(PRESETS)}")
    if crf is None:
        return DEFAULT_CRF[codec]
    lo, hi = CRF_RANGE[codec]
    if not lo <= crf <= hi:
        raise UsageError(f"--crf {crf}: {'VP9' if codec == 'libvpx-vp9' else 'H.264'} takes {lo} to {hi}")
    return crf


class Writer:
    """An output clip being written to `path` (muxer named apart: `path` may be a temporary name).

    `size` is the picture's coded size; H.264 gets it cut to even sides (`self.size`). Frames
    come as YUV planes with a timestamp in `time_base` units; `copy_stream` adds a stream whose
    packets `mux` then writes as they are.
    """

    def __init__(
        self,
        path: Path,
        muxer: str,
        *,
        size: tuple[int, int],
        rate: Fraction,
        time_base: Fraction,
        crf: int | None = None,
        preset: str = "medium",
        display_matrix: Sequence[int] | None = None,
        colour: tuple[int, int, int, int] = (0, 0, 0, 0),
    ):
        self.codec = encoder_for(muxer)
        crf = check_settings(muxer, crf, preset)
        width, height = size
        if self.codec == "libx264":
            width, height = width - width % 2, height - height % 2
        self.size = (width, height)
        if self.codec == "libx264":
            options = {"crf": str(crf), "preset": preset}
        else:  # constant quality (b 0), multi-threaded rows, speed from the preset
            options = {"crf": str(crf), "b": "0", "row-mt": "1", "deadline": "good", "cpu-used": str(VP9_SPEED[preset])}
        if muxer in ("mp4", "mov"):  # the index first, for playing while it downloads
            container_options = {"movflags": "+faststart"}
        else:  # Matroska's timestamps can be negative (audio priming): keep them, instead of shifting all
            container_options = {"avoid_negative_ts": "disabled"}
        try:
            self.container = av.open(str(path), "w", format=muxer, options=container_options)
        except av.error.FFmpegError as e:
            raise OutputError(f"cannot write {path}: {_reason(e)}") from None
        stream = self.container.add_stream(self.codec, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # The input's own time base, so every frame keeps its timestamp exactly (variable rates too).
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        context = stream.codec_context
        context.colorspace, context.color_range, context.color_primaries, context.color_trc = colour
        if display_matrix is not None:
            stream.set_display_matrix(list(display_matrix))  # before anything is muxed: it goes in the header
        self.stream = stream
        self.rate, self.time_base = rate, time_base
        self.copies: dict[int, av.stream.Stream] = {}
        self.frames = 0
        self.last_pts: int | None = None

    def copy_stream(self, stream) -> None:
        """Add a stream whose packets `mux` copies as they are (see `holds` for what a muxer takes)."""
        self.copies[stream.index] = self.container.add_stream_from_template(stream)

    def write(self, yuv: list[np.ndarray], pts: int | None, duration: int = 0) -> None:
        width, height = self.size
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane, data in zip(frame.planes, yuv):
            np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width] = (
                data[: plane.height, : plane.width]
            )
        if pts is None:  # a stream without timestamps: the frame rate's
            pts = round(self.frames / (self.rate * self.time_base))
        if self.last_pts is not None and pts <= self.last_pts:  # repeated timestamps (broken files):
            pts = self.last_pts + 1  # encoders need them increasing
        frame.pts = self.last_pts = pts
        frame.time_base = self.time_base
        if duration:
            frame.duration = duration
        context = self.stream.codec_context
        frame.colorspace, frame.color_range = context.colorspace, context.color_range
        self.container.mux(self.stream.encode(frame))
        self.frames += 1

    def mux(self, packet: av.Packet) -> None:
        stream = self.copies.get(packet.stream.index)
        if stream is not None:
            packet.stream = stream
            self.container.mux(packet)

    def close(self) -> None:
        self.container.mux(self.stream.encode(None))
        self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except av.error.FFmpegError:
            pass


def save_video(images: Sequence[np.ndarray], path: str | Path, *, fps: float, crf: int | None = None,
               preset: str = "medium") -> None:
    """uint8 RGB images of one size as a clip at `fps`, written atomically (BT.709, limited range);
    for H.264 an odd side is padded by a white pixel (sweep grids sit on white)."""
    from fadercli.files import atomic_path

    path = Path(path)
    muxer = muxer_for(path)
    h, w = images[0].shape[:2]
    even = encoder_for(muxer) == "libx264"
    size = (w + w % 2, h + h % 2) if even else (w, h)
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(path) as tmp:
        writer = Writer(tmp, muxer, size=size, rate=rate, time_base=1 / rate, crf=crf, preset=preset, colour=(1, 1, 1, 1))
        try:
            for k, image in enumerate(images):
                if image.shape[:2] != (size[1], size[0]):
                    canvas = np.full((size[1], size[0], 3), 255, np.uint8)
                    canvas[:h, :w] = image
                    image = canvas
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                writer.write(planes(frame.reformat(format="yuv420p", dst_colorspace=1, dst_color_range=1)), k, 1)
            writer.close()
        except BaseException:
            writer.abort()
            raise


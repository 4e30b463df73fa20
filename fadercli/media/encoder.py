"""Writing clips with PyAV: a `Writer` encodes frames given as YUV planes (H.264 with libx264 in
MP4, MOV and Matroska, or VP9 in WebM; 8-bit 4:2:0) with the input's timestamps, frame rate,
display matrix (rotation) and colour tags, and muxes copied packets as they are, never
re-encoded. Pixels an edit leaves alone reach the encoder exactly as the decoder gave them: only
edited regions go through RGB (`merge`). H.264's 4:2:0 needs even sides: an odd side loses its
last row or column.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from fadercli.choices import PRESETS
from fadercli.errors import OutputError, UsageError, import_extra
from fadercli.media.clips import ClipInfo, ffmpeg_reason, planes
from fadercli.media.formats import WRITABLE

av = import_extra("av", "video")


DEFAULT_CRF = {"libx264": 18, "libvpx-vp9": 30}  # near-transparent for a re-encode; VP9's scale is 0..63


CRF_RANGE = {"libx264": (0, 51), "libvpx-vp9": (0, 63)}


# x264's presets -> libvpx's cpu-used (speed 0..8): the same "faster or smaller" choice.
VP9_SPEED = dict(zip(PRESETS, (8, 8, 7, 6, 5, 4, 3, 2, 1)))


def merge(
    yuv: list[np.ndarray],
    before: np.ndarray,
    after: np.ndarray,
    info: ClipInfo,
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
            raise OutputError(f"cannot write {path}: {ffmpeg_reason(e)}") from None
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
            np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width] = data[
                : plane.height, : plane.width
            ]
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


def save_video(
    images: Sequence[np.ndarray], path: str | Path, *, fps: float, crf: int | None = None, preset: str = "medium"
) -> None:
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
        writer = Writer(
            tmp, muxer, size=size, rate=rate, time_base=1 / rate, crf=crf, preset=preset, colour=(1, 1, 1, 1)
        )
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

"""Video: the faces of a clip edited frame by frame without flicker, and sweeps written as video.

    clips.py     reading and writing with PyAV: probing, decoding, the encoder, copied audio/subtitles
    tracking.py  faces followed across frames, landmarks smoothed over time, fades where a face is lost
    editing.py   the two passes over a clip: track and estimate each face's own values, then edit

A clip is read twice and never held: the first pass follows the faces (a full detection every few
frames and on scene cuts, a quick second look around each tracked face in between) and keeps only
landmarks and a few crops per face; the second pass decodes again, edits each tracked face with
its track's smoothed framing and values, and streams the frames to the encoder.

Kept free of heavy imports (the CLI asks `is_video` before anything loads PyAV).
"""

from __future__ import annotations

import os
from pathlib import Path

# Containers read as video, by extension (an animated GIF stays a photo: Pillow reads it).
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".wmv", ".flv",
     ".3gp", ".ogv", ".mxf", ".nut", ".y4m"}
)
# Containers written, by extension -> FFmpeg's muxer name. WebM gets VP9, the others H.264.
# (AVI is read, not written: it keeps neither variable frame rates nor H.264's reordered frames well.)
WRITABLE = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}


def is_video(path: str | os.PathLike) -> bool:
    """Whether an input is taken as a clip (by its container's extension)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_writable_video(path: str | os.PathLike) -> bool:
    """Whether an output name asks for a video that fader can write."""
    return Path(path).suffix.lower() in WRITABLE

"""What an edit gives back: per face its index, box, own values and the values it was given (or a
classifier's probabilities); per image the edited picture and the time it took; per clip its
face tracks (TrackResult) and what was written (VideoResult)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class FaceResult:
    """One face: its index among the photo's faces (largest first), its box in the photo (None for a
    whole image), the values the models estimate for it, and the values an edit gave it or the
    probabilities a classifier gives its attributes (binary: of "with"; categorical: per category)."""

    index: int
    box: tuple[float, float, float, float] | None
    estimated: dict[str, float] = field(default_factory=dict)
    values: dict[str, float] | None = None
    probabilities: dict[str, float | list[float]] | None = None

    def to_dict(self) -> dict:
        record: dict = {"face": self.index, "box": None if self.box is None else [round(v, 2) for v in self.box]}
        record["estimated"] = {k: round(v, 4) for k, v in self.estimated.items()}
        if self.values is not None:
            record["values"] = {k: round(v, 4) for k, v in self.values.items()}
        if self.probabilities is not None:
            record["probabilities"] = {k: _rounded(v) for k, v in self.probabilities.items()}
        return record


def _rounded(value: float | list[float]) -> float | list[float]:
    return [round(v, 4) for v in value] if isinstance(value, list) else round(value, 4)


@dataclass
class EditResult:
    """An edited image, of the kind given (a Photo for a file: `images.save_image` writes it)."""

    source: Any  # what was given: a path, a Photo, a PIL image or an array
    image: Any  # of the same kind (a Photo for a path)
    faces: list[FaceResult]
    seconds: float  # this image's share of the work (reading, finding faces, the models, pasting)


# progress(stage, frames done, frames in all or None): "tracking" (pass 1), then "editing" (pass 2).
Progress = Callable[[str, int, "int | None"], None]


@dataclass
class TrackResult(FaceResult):
    """One face followed through a clip: its index among the clip's tracks (largest median size
    first), its median box in the picture as displayed, the first and last frame it is in and the
    number of frames it was found in; its values are medians over crops spread along the track."""

    first: int = 0
    last: int = 0
    found: int = 0

    def to_dict(self) -> dict:
        record = super().to_dict()
        return {"track": record.pop("face"), "frames": [self.first, self.last], "found": self.found, **record}


@dataclass
class VideoResult:
    """An edited clip (`output`), or for `inspect_clip` the tracks of one (`output` None)."""

    source: Path
    output: Path | None
    frames: int
    rate: float
    size: tuple[int, int]  # as displayed
    tracks: list[TrackResult]
    seconds: float
    notes: list[str] = field(default_factory=list)  # for the user: an odd size cut, streams left out, ...

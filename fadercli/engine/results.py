"""What an edit gives back: per face its index, box, own values and the values it was given (or a
classifier's probabilities); per image the edited picture and the time it took."""

from __future__ import annotations

from dataclasses import dataclass, field
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

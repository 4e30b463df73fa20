"""Faces: finding them in a photo (YuNet, detect.py) and following them through a clip, framing them
as CelebA's aligned images are framed (geometry.py), choosing which to edit (choose.py), and
pasting an edit back so that every pixel outside a soft mask stays as it was (paste.py)."""

from fadercli.faces.choose import align_faces, parse_face_choice, pick, select_faces
from fadercli.faces.detect import DEFAULT_THRESHOLD, SURE, detector_model, find_faces, follow
from fadercli.faces.geometry import (
    DEFAULT_SIZE,
    AlignedFace,
    Alignment,
    Face,
    alignment_for,
    crop,
    crop_footprint,
    footprint,
    similarity,
    template,
    whole_image,
)
from fadercli.faces.paste import debug_view, paste, paste_faces, photo_mask

__all__ = [
    "DEFAULT_SIZE",
    "DEFAULT_THRESHOLD",
    "SURE",
    "AlignedFace",
    "Alignment",
    "Face",
    "align_faces",
    "alignment_for",
    "crop",
    "crop_footprint",
    "debug_view",
    "detector_model",
    "find_faces",
    "follow",
    "footprint",
    "parse_face_choice",
    "paste",
    "paste_faces",
    "photo_mask",
    "pick",
    "select_faces",
    "similarity",
    "template",
    "whole_image",
]

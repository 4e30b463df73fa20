"""Photos and clips in and out.

formats.py   which files are photos and which are clips, by name; inputs expanded
images.py    the Photo, and the gate every untrusted image is read through
writing.py   photos written back in the mode and format closest to the input's
grids.py     cells, grids and GIFs (sweeps)
clips.py     clips read through their gate (PyAV): probing, decoding, copied streams
encoder.py   clips written: H.264 / VP9, timestamps, rotation, copied audio and subtitles
"""

from fadercli.media.images import Photo, decode_image, from_array, from_pil, read_image
from fadercli.media.writing import encode_image, save_image, to_pil

__all__ = ["Photo", "decode_image", "encode_image", "from_array", "from_pil", "read_image", "save_image", "to_pil"]

"""fader: Fader Networks for your own photos.

Kept free of heavy imports: `fader --help` loads this package, and must not pull in torch or cv2.
"""

__version__ = "0.1.0"

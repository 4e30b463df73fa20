"""Drawing the toy faces of toyfaces.py: a pure function of their parameters, vectorised over a batch
with numpy (a few milliseconds a face at 64 px), so a face drawn again with one attribute flipped is
its exact counterfactual. The drawing is one pass over layers (background, head, hair, eyes, nose,
mouth, beard, glasses, hat, camera), each a few lines over the face's shared coordinate grid.
"""

from __future__ import annotations

import numpy as np

_IRIS = np.array([[60, 40, 25], [40, 90, 160], [60, 120, 60], [90, 70, 50], [110, 110, 120], [30, 30, 30]], float)


# Indexed by the hair kind (short, long, curly, bald): the hat and the beard that face wears
# (bald heads wear rimless glasses).
_HAT_FOR_HAIR = np.array([0, 1, 2, 3])  # cap, brimmed hat, beanie, top hat


_BEARD_FOR_HAIR = np.array([0, 0, 1, 2])  # full, full, goatee, stubble


def _alpha(distance: np.ndarray, px) -> np.ndarray:
    """Anti-aliased coverage from a signed distance (negative inside), in face units."""
    return np.clip(0.5 - distance / px, 0.0, 1.0)


def _blob(x, y, cx, cy, rx, ry, power=2.0):
    """Signed distance (first order, so strokes keep their width) to a superellipse:
    power 2 is an ellipse, higher powers approach a rectangle with rounded corners."""
    u, w = np.abs(x - cx) / rx + 1e-6, np.abs(y - cy) / ry + 1e-6
    if isinstance(power, float) and power == 2.0:  # the common case, without the costly powers
        r = np.sqrt(u * u + w * w)
        grad = np.sqrt((u / rx) ** 2 + (w / ry) ** 2) / r
    else:
        r = (u**power + w**power) ** (1 / power)
        grad = r ** (1 - power) * np.sqrt((u ** (power - 1) / rx) ** 2 + (w ** (power - 1) / ry) ** 2)
    return (r - 1) / np.maximum(grad, 1e-3)


def _segment(x, y, ax, ay, bx, by):
    """Distance to the segment from (ax, ay) to (bx, by)."""
    vx, vy = bx - ax, by - ay
    t = np.clip(((x - ax) * vx + (y - ay) * vy) / (vx**2 + vy**2 + 1e-9), 0, 1)
    return np.hypot(x - ax - t * vx, y - ay - t * vy)


def _paint(canvas, colour, alpha):
    delta = colour[:, None, None, :] - canvas
    delta *= alpha[..., None]
    canvas += delta


def _grey(n: int, level: float) -> np.ndarray:
    return np.full((n, 3), level, dtype=np.float32)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def _beard_colour(hair: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Darker than the hair, or lighter where that would vanish into the skin: visible on any face."""
    dark = hair * 0.55
    close = (_luma(skin) - _luma(dark) < 45)[:, None]
    return np.where(close, np.clip(dark + 90, 0, 255), dark)


def _background(p, v, gx, gy, n):
    """Per face: one of six backgrounds mixing its two colours."""
    theta, freq, phase = v("bg_theta"), v("bg_freq"), v("bg_phase")
    along = np.cos(theta) * gx + np.sin(theta) * gy
    across = -np.sin(theta) * gx + np.cos(theta) * gy
    mottled = (np.sin(freq * along + phase) + np.sin(0.7 * freq * across - phase) + np.sin(1.3 * freq * (gx + gy))) / 3
    mixes = [
        (gy + 1) / 2 + 0 * gx,  # vertical gradient
        np.zeros_like(along),  # plain
        (np.sin(freq * along * 2 + phase) > 0) * 0.8 + 0.1,  # stripes
        ((np.sin(freq * along + phase) * np.sin(freq * across + phase)) > 0) * 0.6 + 0.2,  # checks
        np.clip(np.hypot(gx, gy) / 1.4, 0, 1),  # radial
        mottled * 0.5 + 0.5,
    ]
    kind = p["bg_kind"].astype(int)
    mix = np.zeros((n, *gx.shape[-2:]), np.float32)
    for k, m in enumerate(mixes):
        mix += (kind == k)[:, None, None] * m
    return p["bg_a"][:, None, None] * (1 - mix[..., None]) + p["bg_b"][:, None, None] * mix[..., None]


def render(params: dict[str, np.ndarray], size: int = 64) -> np.ndarray:
    """uint8 images of shape (n, size, size, 3)."""
    n = len(params["skin"])
    # float32 throughout: twice as fast as float64 and far more precise than 8-bit output needs.
    p = {k: np.asarray(val, dtype=np.float32) for k, val in params.items() if k != "grain_seed"}
    v = lambda key: p[key][:, None, None]  # noqa: E731 - broadcast a per-face scalar
    kind = lambda key, k: (p[key] == k)[:, None, None].astype(np.float32)  # noqa: E731
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    gx, gy = gx[None], gy[None]
    # Pose: map pixel coordinates into the face's own frame.
    cos, sin, s = np.cos(v("angle")), np.sin(v("angle")), v("scale")
    x = (cos * (gx - v("dx")) + sin * (gy - v("dy"))) / s
    y = (-sin * (gx - v("dx")) + cos * (gy - v("dy"))) / s
    pixel = np.float32(2.0 / size) / v("scale")  # one pixel in face units
    # Half the line weight: in proportion to the image above 64 px, at least 1 to 1.5 px below it
    # (thinner lines are half drawn by anti-aliasing).
    weight = v("line_px")
    line = 0.5 * np.maximum(weight * size / 64, np.minimum(weight, 1.5)) * pixel
    fx = x - v("turn") * 0.5  # the features' frame: shifted sideways when the head turns

    canvas = _background(p, v, gx, gy, n)
    fw, fh, jaw, hair_kind = v("face_w"), v("face_h"), v("jaw"), p["hair_kind"]
    ink, outlined = p["skin"] * 0.25, v("outline")

    def draw_outlined(colour, distance):
        _paint(canvas, colour, _alpha(distance, pixel))
        _paint(canvas, ink, _alpha(np.abs(distance) - line, pixel) * outlined)

    # Hair behind the head (none when bald); long hair falls to the shoulders, curly hair is bumpy.
    bumps = 0.025 * np.sin(14 * np.arctan2(y + 0.08, x)) * kind("hair_kind", 2)
    back = _blob(x, y, 0, -0.08, fw + 0.1, fh + 0.06) + bumps
    back = np.where(kind("hair_kind", 1) > 0, np.minimum(back, _blob(x, y, 0, 0.3, fw + 0.12, 0.6)), back)
    back = np.where(kind("hair_kind", 3) > 0, np.inf, back)
    draw_outlined(p["hair"], back)
    ears = np.minimum(_blob(x, y, -fw, 0.02, 0.08, 0.13), _blob(x, y, fw, 0.02, 0.08, 0.13))
    draw_outlined(p["skin"] * 0.92, ears)
    face = _blob(x, y, 0, 0.05, fw, fh, jaw)
    draw_outlined(p["skin"], face)
    for side in (-1, 1):
        cheek = _blob(fx, y, side * (v("eye_gap") + 0.04), 0.17, 0.07, 0.045)
        _paint(canvas, np.array([[230, 110, 110]], np.float32).repeat(n, 0), _alpha(cheek, 4 * pixel) * v("blush"))

    # Beard: full (the lower face, leaving the mouth free), a goatee, or stubble.
    my, mw = v("mouth_y"), v("mouth_w")
    beard_kind = _BEARD_FOR_HAIR[hair_kind.astype(int)]
    full = np.maximum(np.maximum(face, 0.12 - y), -_blob(fx, y, 0, my + 0.01, mw + 0.04, 0.07))
    goatee = np.maximum(_blob(fx, y, 0, my + 0.12, 0.11, 0.1), -_blob(fx, y, 0, my + 0.01, mw + 0.02, 0.055))
    goatee = np.maximum(goatee, face)
    stubble_region = np.maximum(np.maximum(face, 0.18 - y), -_blob(fx, y, 0, my, mw + 0.03, 0.06))
    dots = (np.sin(fx / pixel * 1.6) * np.sin(y / pixel * 1.6) > 0.2).astype(np.float32)  # every 4 px
    beard_alpha = (
        (beard_kind == 0)[:, None, None] * _alpha(full, pixel)
        + (beard_kind == 1)[:, None, None] * _alpha(goatee, pixel)
        + (beard_kind == 2)[:, None, None] * _alpha(stubble_region, pixel) * (0.35 + 0.45 * dots)
    )
    _paint(canvas, _beard_colour(p["hair"], p["skin"]), beard_alpha * v("Beard"))

    # Fringe: hair above a hairline inside the head outline (bald heads have none).
    fringe = np.maximum(_blob(x, y, 0, -0.08, fw + 0.04, fh + 0.02), y + v("hairline") - 0.1 * x**2 - v("parting") * x)
    _paint(canvas, p["hair"], _alpha(fringe, pixel) * (1 - kind("hair_kind", 3)))

    gap, ey, es = v("eye_gap"), v("eye_y"), v("eye_size")
    iris = _IRIS[p["iris"].astype(int)].astype(np.float32)
    for side in (-1, 1):
        ex = side * gap
        white = _blob(fx, y, ex, ey, 0.09 * es, 0.055 * es)
        _paint(canvas, _grey(n, 250.0), _alpha(white, pixel) * kind("eye_kind", 0))
        _paint(canvas, iris, _alpha(_blob(fx, y, ex, ey + 0.005, 0.04 * es, 0.04 * es), pixel) * kind("eye_kind", 0))
        _paint(canvas, iris, _alpha(_blob(fx, y, ex, ey, 0.06 * es, 0.06 * es), pixel) * kind("eye_kind", 2))
        pupil = _blob(fx, y, ex, ey + 0.005, 0.018 * es, 0.018 * es) - 0.012 * kind("eye_kind", 1)
        _paint(canvas, _grey(n, 15.0), _alpha(pupil, pixel))
        brow = _blob(fx, y - side * v("brow_tilt") * (fx - ex), ex, ey - 0.12 * es, 0.1, v("brow"))
        _paint(canvas, p["hair"] * 0.7, _alpha(brow, pixel))

    nose_y = (ey + my) / 2
    shaded = _blob(fx, y, 0, nose_y, 0.035, 0.06)
    stroke = np.minimum(
        _segment(fx, y, 0.0, nose_y - 0.06, 0.02, nose_y + 0.04),
        _segment(fx, y, 0.02, nose_y + 0.04, -0.02, nose_y + 0.05),
    )
    nostrils = np.minimum(
        _blob(fx, y, -0.025, nose_y + 0.04, 0.012, 0.01), _blob(fx, y, 0.025, nose_y + 0.04, 0.012, 0.01)
    )
    _paint(canvas, p["skin"] * 0.8, _alpha(shaded, pixel) * 0.8 * kind("nose_kind", 0))
    _paint(canvas, p["skin"] * 0.55, _alpha(stroke - line, pixel) * kind("nose_kind", 1))
    _paint(canvas, p["skin"] * 0.5, _alpha(nostrils, pixel) * kind("nose_kind", 2))

    # Mouth: by the mouth kind, a line / closed lips / slight frown, or an open smile with teeth /
    # a wide grin of teeth / an open laugh.
    smiling = v("Smiling")
    neutral_line = np.maximum(np.abs(y - my) - line, np.abs(fx) - mw * 0.75)
    lips = _blob(fx, y, 0, my, mw * 0.5, 0.022)
    frown = np.maximum(np.abs(_blob(fx, y, 0, my + 0.04, mw * 0.8, 0.045)) - line, y - my - 0.015)
    neutral = [neutral_line, lips, frown]
    crescent = np.maximum(_blob(fx, y, 0, my - 0.06, mw + 0.04, 0.14), my - 0.05 - y)
    teeth = np.maximum(_blob(fx, y, 0, my - 0.06, mw + 0.01, 0.095), my - 0.04 - y)
    grin = np.maximum(_blob(fx, y, 0, my - 0.07, mw + 0.06, 0.13), my - 0.04 - y)
    tongue = np.maximum(_blob(fx, y, 0, my + 0.055, 0.06, 0.03), crescent)
    lip_colour = p["skin"] * np.array([0.75, 0.4, 0.45], np.float32)  # lips follow the skin: visible when hidden
    for k, d in enumerate(neutral):
        _paint(canvas, lip_colour, _alpha(d, pixel) * (1 - smiling) * kind("mouth_kind", k))
    open_mouth = kind("mouth_kind", 0) + kind("mouth_kind", 2)
    _paint(canvas, _grey(n, 60.0), _alpha(crescent, pixel) * smiling * open_mouth)
    _paint(canvas, _grey(n, 245.0), _alpha(teeth, pixel) * smiling * kind("mouth_kind", 0))
    _paint(
        canvas,
        np.array([[200, 80, 90]], np.float32).repeat(n, 0),
        _alpha(tongue, pixel) * smiling * kind("mouth_kind", 2),
    )
    _paint(canvas, lip_colour * 0.5, _alpha(grin, pixel) * smiling * kind("mouth_kind", 1))
    _paint(canvas, _grey(n, 240.0), _alpha(grin + 0.75 * pixel, pixel) * smiling * kind("mouth_kind", 1))

    # Eyeglasses: lenses shaped like the face (round to rectangular), frames as wide as the
    # drawing's lines in a deeper shade of the hair (black, tortoise, gold, red, silver; rimless on
    # bald heads), tinted by the light (dark in strong light).
    glasses = v("Eyeglasses")
    tone = p["hair"].mean(1, keepdims=True)
    frame = np.clip((p["hair"] - tone) * 1.6 + tone * 0.7, 0, 255)
    rimmed = p["hair_kind"] != 3
    rim = rimmed[:, None, None].astype(np.float32)
    arm = np.where(rimmed[:, None], frame, np.float32(150))  # temples and bridge (clear on rimless glasses)
    power = 2 + 2.5 * (jaw - 2)
    tint = np.clip(0.12 + 2.2 * v("light"), 0, 0.85)
    lx, ly = 0.12 * np.sqrt(es), 0.085 * np.sqrt(es)
    for side in (-1, 1):
        lens = _blob(fx, y, side * gap, ey, lx, ly, power)
        _paint(canvas, _grey(n, 40.0), _alpha(lens, pixel) * glasses * tint)
        _paint(canvas, frame, _alpha(np.abs(lens) - line, pixel) * glasses * rim)
        edge = np.abs(lens) - 0.5 * pixel
        _paint(canvas, _grey(n, 235.0), _alpha(edge, pixel) * glasses * (1 - rim) * 0.7)
        temple = _segment(fx, y, side * (gap + lx), ey - 0.02, side * (fw + 0.02), ey - 0.04)
        _paint(canvas, arm, _alpha(temple - line, pixel) * glasses)
    bridge = np.maximum(np.abs(fx) - (gap - lx), np.abs(y - ey + 0.02 + 0.1 * fx**2) - line)
    _paint(canvas, arm, _alpha(bridge, pixel) * glasses)

    # Hat: by the hair kind, a cap with a visor, a brimmed hat, a beanie or a top hat.
    hat = v("Hat")
    hat_colour = np.clip(255 - p["bg_a"], 30, 225)
    hat_kind = _HAT_FOR_HAIR[hair_kind.astype(int)]
    top = -fh - 0.03
    cap = np.minimum(
        np.maximum(_blob(x, y, 0, top + 0.26, fw + 0.05, 0.3), y - top - 0.2),
        np.maximum(_blob(x, y, 0.18, top + 0.22, fw * 0.8, 0.05), top + 0.2 - y),
    )
    brimmed = np.minimum(
        np.maximum(_blob(x, y, 0, -0.32, fw + 0.06, 0.42), y + 0.3),
        np.maximum(np.abs(x) - (fw + 0.18), np.abs(y + 0.3) - 0.045),
    )
    beanie = np.maximum(_blob(x, y, 0, top + 0.3, fw + 0.06, 0.34) + 0.02 * np.sin(30 * x), y - top - 0.3)
    tall = np.minimum(
        np.maximum(np.abs(x) - fw * 0.8, np.abs(y - top + 0.05) - 0.3),
        np.maximum(np.abs(x) - (fw + 0.14), np.abs(y - top - 0.22) - 0.035),
    )
    shapes = [cap, brimmed, beanie, tall]
    hat_shape = np.full_like(x, np.inf)
    for k, d in enumerate(shapes):
        hat_shape = np.where((hat_kind == k)[:, None, None], d, hat_shape)
    band = np.maximum(hat_shape, np.abs(y - top - np.where((hat_kind == 2)[:, None, None], 0.25, 0.2)) - 0.035)
    _paint(canvas, hat_colour, _alpha(hat_shape, pixel) * hat)
    _paint(canvas, hat_colour * 0.6, _alpha(band, pixel) * hat)
    _paint(canvas, ink, _alpha(np.abs(hat_shape) - line, pixel) * hat * outlined)

    # The scene's light, then the camera: blur, sensor noise, JPEG.
    shade = 1 + v("light") * (np.cos(v("light_dir")) * gx + np.sin(v("light_dir")) * gy)
    canvas *= (v("gain") * shade)[..., None]
    canvas = (canvas - 128) * v("contrast")[..., None] + 128
    return _camera(canvas, params)


def _camera(canvas: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    import cv2

    out = np.empty(canvas.shape, np.uint8)
    for i, image in enumerate(canvas):
        sigma = float(params["blur"][i]) * canvas.shape[1] / 64
        noise, quality = float(params["noise"][i]), int(params["jpeg"][i])
        if sigma > 0:
            image = cv2.GaussianBlur(image, (0, 0), sigma)
        if noise > 0:
            grain = np.random.default_rng(int(params["grain_seed"][i])).normal(0, noise, image.shape)
            image = image + grain.astype(np.float32)
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        if quality > 0:
            ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            image = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
        out[i] = image
    return out

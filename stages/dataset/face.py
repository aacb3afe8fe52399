"""Draw one synthetic face (with hair, ears, neck) into an RGBA-like patch.

The face is drawn upright in its own frame at ``ss`` times the final size
(then area-downsampled, which anti-aliases the small features), with some yaw
(features slide across a head modelled as a sphere, the far eye and mouth half
foreshorten, the nose tip sticks out).  The caller rotates and places the
patch.  Returned landmarks follow the RetinaFace order of
:mod:`stages.dataset.labels` (image-left eye, image-right eye, nose tip,
image-left mouth corner, image-right mouth corner); the returned outline is
the face contour (forehead to chin, no ears or hair) whose bounding box is the
label box.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SHIFT = 3
_F = 1 << SHIFT
# skin tones (RGB), darkest to lightest; a face picks a point on this line
SKIN_RGB = np.array([[58, 38, 28], [95, 62, 45], [141, 93, 66], [190, 138, 104],
                     [225, 182, 150], [246, 218, 200]], np.float32)
HAIR_RGB = np.array([[20, 17, 15], [45, 32, 25], [95, 62, 40], [165, 120, 70],
                     [220, 190, 130], [160, 160, 160], [140, 60, 30], [235, 235, 230]], np.float32)
IRIS_RGB = np.array([[60, 35, 20], [30, 20, 15], [70, 110, 150], [80, 120, 70], [110, 90, 60]], np.float32)


def skin_tone(rng: np.random.Generator) -> tuple[float, float, float]:
    """A BGR skin colour anywhere from very dark to very light."""
    t = rng.uniform(0, len(SKIN_RGB) - 1)
    i = min(int(t), len(SKIN_RGB) - 2)
    rgb = SKIN_RGB[i] * (1 - (t - i)) + SKIN_RGB[i + 1] * (t - i)
    rgb = rgb * rng.uniform(0.92, 1.06, 3)
    return tuple(float(v) for v in np.clip(rgb[::-1], 0, 255))


def hair_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    rgb = HAIR_RGB[rng.integers(len(HAIR_RGB))] * rng.uniform(0.85, 1.15, 3)
    return tuple(float(v) for v in np.clip(rgb[::-1], 0, 255))


def scale_col(col, k: float):
    return tuple(float(min(255.0, c * k)) for c in col)


def ellipse(img, center, axes, angle, col, thick=-1, start=0, end=360):
    """Anti-aliased sub-pixel ellipse (``thick`` in pixels, -1 = filled)."""
    c = (int(round(center[0] * _F)), int(round(center[1] * _F)))
    a = (max(1, int(round(axes[0] * _F))), max(1, int(round(axes[1] * _F))))
    t = -1 if thick < 0 else max(1, int(round(thick)))
    cv2.ellipse(img, c, a, float(angle), float(start), float(end), col, t, cv2.LINE_AA, SHIFT)


def line(img, p, q, col, thick):
    cv2.line(img, (int(round(p[0] * _F)), int(round(p[1] * _F))), (int(round(q[0] * _F)), int(round(q[1] * _F))),
             col, max(1, int(round(thick))), cv2.LINE_AA, SHIFT)


@dataclass
class FacePatch:
    image: np.ndarray      # (P, P, 3) uint8 BGR
    alpha: np.ndarray      # (P, P) float32 in [0, 1]
    landmarks: np.ndarray  # (5, 2) patch coordinates
    outline: np.ndarray    # (N, 2) patch coordinates of the face contour


def render_face(rng: np.random.Generator, size: float, yaw_deg: float, skin=None, ss: int = 2) -> FacePatch:
    """A face whose box height is ``size`` px (before rotation)."""
    S = size * ss
    P = int(np.ceil(2.6 * S)) // 2 * 2 + 2
    c = P / 2.0
    img = np.zeros((P, P, 3), np.uint8)
    mask = np.zeros((P, P), np.uint8)
    skin = skin or skin_tone(rng)
    hair = hair_colour(rng)
    yaw = np.radians(yaw_deg)
    rx = 0.40 * S * rng.uniform(0.88, 1.04) * (1 - 0.06 * abs(np.sin(yaw)))

    def fx(u):  # horizontal position of a feature at normalized u on a sphere
        return c + rx * np.sin(np.arcsin(np.clip(u, -1, 1)) + yaw)

    def fore(u):  # foreshortening of a feature's width at u
        return max(0.25, np.cos(np.arcsin(np.clip(u, -1, 1)) + yaw))

    def both(center, axes, angle, col, **kw):
        ellipse(img, center, axes, angle, col, **kw)
        ellipse(mask, center, axes, angle, 255, **kw)

    style = rng.choice(["bald", "short", "short", "long", "long", "curly"])
    if style == "long":
        both((c, c + 0.12 * S), (rx * 1.3, 0.72 * S), 0, scale_col(hair, 0.85))
    both((c - 0.6 * rx * np.sin(yaw), c + 0.45 * S), (0.2 * S, 0.3 * S), 0, scale_col(skin, 0.78))  # neck
    for side in (-1, 1):  # ears (the far one ends up behind the face)
        both((c + side * rx * 0.97 - 0.55 * rx * np.sin(yaw), c - 0.02 * S), (0.075 * S, 0.12 * S), 0,
             scale_col(skin, 0.9))
    if style != "bald":
        both((c, c - 0.1 * S), (rx * 1.08, 0.5 * S), 0, hair)
    # face contour: skull ellipse + narrower jaw ellipse (an egg, chin at +0.5 S)
    upper = ((c, c - 0.05 * S), (rx, 0.45 * S))
    jaw = ((c + 0.05 * rx * np.sin(yaw), c + 0.15 * S), (0.82 * rx, 0.35 * S))
    for cen, ax in (upper, jaw):
        both(cen, ax, 0, skin)
    outline = np.concatenate([cv2.ellipse2Poly((0, 0), (int(ax[0] * 16), int(ax[1] * 16)), 0, 0, 360, 10)
                              .astype(np.float32) / 16 + np.float32(cen) for cen, ax in (upper, jaw)])
    if style != "bald":  # hairline cap, parted at random
        hy = c - S * rng.uniform(0.28, 0.36)
        both((c + rx * np.sin(yaw) * 0.3, hy), (rx * 1.04, 0.27 * S), rng.uniform(-8, 8), hair, start=180, end=360)
        if style == "curly":
            for a in np.linspace(190, 350, 9):
                r = np.radians(a)
                both((c + rx * 1.02 * np.cos(r), hy + 0.27 * S * np.sin(r)), (0.09 * S, 0.09 * S), 0, hair)
    dark = scale_col(hair, 0.6) if style != "bald" else scale_col(skin, 0.45)
    # eyebrows, eyes (landmarks 0, 1 at the eye centres)
    ey = c - S * rng.uniform(0.08, 0.12)
    iris = tuple(float(v) for v in IRIS_RGB[rng.integers(len(IRIS_RGB))][::-1])
    closed = rng.random() < 0.1
    lms = []
    for u in (-0.46, 0.46):
        x, f = fx(u), fore(u)
        ellipse(img, (x, ey - 0.085 * S), (0.09 * S * f, 0.035 * S), 0, dark, thick=0.028 * S, start=200, end=340)
        if closed:
            line(img, (x - 0.07 * S * f, ey), (x + 0.07 * S * f, ey), scale_col(skin, 0.4), 0.018 * S)
        else:
            ellipse(img, (x, ey), (0.075 * S * f, 0.036 * S), 0, (235, 240, 240))
            ellipse(img, (x, ey), (0.032 * S * f, 0.032 * S), 0, iris)
            ellipse(img, (x, ey), (0.014 * S * f, 0.014 * S), 0, (10, 10, 10))
            ellipse(img, (x, ey), (0.078 * S * f, 0.04 * S), 0, scale_col(skin, 0.35), thick=0.016 * S,
                    start=180, end=360)
        lms.append((x, ey))
    # nose: shadowed ridge, nostrils, tip (landmark 2)
    nx, ny = c + rx * 1.12 * np.sin(yaw), c + S * rng.uniform(0.05, 0.09)
    line(img, (fx(0) + 0.04 * S, ey + 0.02 * S), (nx + 0.03 * S, ny - 0.02 * S), scale_col(skin, 0.8), 0.025 * S)
    for side in (-1, 1):
        ellipse(img, (nx + side * 0.04 * S * fore(side * 0.1), ny + 0.02 * S), (0.02 * S, 0.012 * S), 0,
                scale_col(skin, 0.4))
    ellipse(img, (nx, ny - 0.01 * S), (0.025 * S, 0.02 * S), 0, scale_col(skin, 1.12))
    lms.append((nx, ny))
    # mouth (landmarks 3, 4 at the corners)
    my = c + S * rng.uniform(0.23, 0.27)
    ml, mr = (fx(-0.3), my), (fx(0.3), my)
    mc, half = ((ml[0] + mr[0]) / 2, my), (mr[0] - ml[0]) / 2
    lip = (skin[0] * 0.55, skin[1] * 0.55, min(255.0, skin[2] * 0.8 + 30))
    kind = rng.choice(["closed", "closed", "smile", "open"])
    if kind == "open":
        ellipse(img, mc, (half, 0.055 * S), 0, lip)
        ellipse(img, mc, (half * 0.8, 0.035 * S), 0, (30, 25, 40))
        ellipse(img, (mc[0], my - 0.02 * S), (half * 0.6, 0.012 * S), 0, (225, 230, 230))
    else:
        ellipse(img, mc, (half, 0.028 * S), 0, lip)
        if kind == "smile":  # lower half-ellipse through both corners
            ellipse(img, mc, (half, 0.03 * S), 0, scale_col(lip, 0.5), thick=0.014 * S, start=0, end=180)
        else:
            line(img, ml, mr, scale_col(lip, 0.5), 0.014 * S)
    lms += [ml, mr]
    if style != "bald" and rng.random() < 0.12:  # moustache
        ellipse(img, (mc[0], my - 0.05 * S), (half * 1.1, 0.03 * S), 0, dark)
    if rng.random() < 0.15:  # glasses
        frame = tuple(float(v) for v in rng.uniform(0, 90, 3))
        for x, y in lms[:2]:
            ellipse(img, (x, y), (0.1 * S, 0.075 * S), 0, frame, thick=0.014 * S)
        line(img, (lms[0][0] + 0.1 * S, ey), (lms[1][0] - 0.1 * S, ey), frame, 0.014 * S)
    _shade(img, mask, rng, S)
    img = cv2.GaussianBlur(img, (0, 0), 0.5 * ss)
    alpha = cv2.GaussianBlur(mask, (0, 0), 0.5 * ss)
    small = P // ss
    img = cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, (small, small), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return FacePatch(img, alpha, np.float32(lms) / ss, outline / ss)


def _shade(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator, S: float) -> None:
    """Directional light plus darker rims, in place."""
    P = img.shape[0]
    a, k = rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.45)
    g = (np.arange(P, dtype=np.float32) - P / 2) / S
    light = 1.0 + k * (np.cos(a) * g[None, :] + np.sin(a) * g[:, None])
    k = max(1, int(S // 24))  # blur a downsampled mask: same look, a fraction of the cost
    small = cv2.resize(mask, (P // k, P // k), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 0.12 * S / k)
    rim = cv2.resize(small, (P, P), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    factor = np.clip(light * (0.72 + 0.28 * rim), 0.3, 1.4)
    img[:] = np.clip(img * factor[..., None], 0, 255).astype(np.uint8)

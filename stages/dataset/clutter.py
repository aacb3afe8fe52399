"""Everything in a synthetic scene that is not a labelled face.

* :func:`background`: gradients, low-frequency colour noise, random shapes,
  stripes/checker textures, mild blur;
* :func:`distractor`: non-faces a detector must learn to reject: skin-coloured
  blobs (plain ellipses, arms, backs of heads), face-like features in the
  wrong arrangement, and eye/mouth-like patterns on non-skin objects;
* :func:`occlude`: hands, bars and scarves drawn over part of a face;
* :func:`body`: shoulders under a face, drawn before it.
"""
from __future__ import annotations

import cv2
import numpy as np

from stages.dataset.face import ellipse, hair_colour, line, scale_col, skin_tone


def _col(rng, lo=0, hi=255):
    return tuple(float(v) for v in rng.uniform(lo, hi, 3))


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    t = (np.cos(a) * xx + np.sin(a) * yy) / max(h, w)
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    c0, c1 = np.float32(_col(rng, 20, 235)), np.float32(_col(rng, 20, 235))
    img = c0 + (c1 - c0) * t[..., None]
    g = int(rng.integers(3, 9))
    img += cv2.resize(rng.normal(0, rng.uniform(5, 35), (g, g, 3)).astype(np.float32), (w, h),
                      interpolation=cv2.INTER_CUBIC)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.35:  # a textured region (stripes or checker), like fabric or tiles
        per = rng.uniform(4, 24)
        rot = rng.uniform(0, np.pi)
        u = (np.cos(rot) * xx + np.sin(rot) * yy) / per
        v = (-np.sin(rot) * xx + np.cos(rot) * yy) / per
        pat = np.sin(2 * np.pi * u) if rng.random() < 0.5 else np.sign(np.sin(np.pi * u) * np.sin(np.pi * v))
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        region = (slice(y0, y0 + int(rng.integers(h // 4, h))), slice(x0, x0 + int(rng.integers(w // 4, w))))
        amp = rng.uniform(10, 40)
        img[region] = np.clip(img[region] + amp * pat[region][..., None], 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 16))):
        _shape(rng, img)
    sigma = rng.uniform(0, 1.5)
    return cv2.GaussianBlur(img, (0, 0), sigma) if sigma > 0.3 else img


def _shape(rng, img):
    h, w = img.shape[:2]
    col = _col(rng)
    kind = rng.integers(4)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    r = rng.uniform(0.03, 0.3) * max(h, w)
    if kind == 0:  # rotated rectangle
        box = cv2.boxPoints(((cx, cy), (r, r * rng.uniform(0.2, 2)), rng.uniform(0, 180)))
        cv2.fillConvexPoly(img, np.int32(box * 8), col, cv2.LINE_AA, 3)
    elif kind == 1:
        ellipse(img, (cx, cy), (r / 2, r / 2 * rng.uniform(0.3, 1)), rng.uniform(0, 180), col,
                thick=-1 if rng.random() < 0.6 else rng.uniform(1, 4))
    elif kind == 2:
        line(img, (cx, cy), (cx + rng.normal(0, r), cy + rng.normal(0, r)), col, rng.uniform(1, 6))
    else:
        pts = np.stack([cx + rng.normal(0, r / 2, 5), cy + rng.normal(0, r / 2, 5)], 1)
        cv2.fillPoly(img, [np.int32(pts * 8)], col, cv2.LINE_AA, 3)


def _shaded_blob(rng, img, center, axes, angle, col):
    """An ellipse with a light gradient and dark rim, like a face without features."""
    ellipse(img, center, axes, angle, scale_col(col, 0.8))
    ellipse(img, (center[0] - axes[0] * 0.15, center[1] - axes[1] * 0.15), (axes[0] * 0.75, axes[1] * 0.75),
            angle, col)
    ellipse(img, (center[0] - axes[0] * 0.3, center[1] - axes[1] * 0.3), (axes[0] * 0.3, axes[1] * 0.3),
            angle, scale_col(col, 1.1))


def _features(rng, img, center, s, angle_deg, dark, arrangement):
    """Eye/mouth-like marks at ``center`` (size ``s``) in a non-face arrangement.

    (No upside-down layout: an inverted face is still a face.)"""
    a = np.radians(angle_deg)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    layouts = {
        "stacked": [(0, -0.25, "eye"), (0, 0.05, "eye"), (0, 0.3, "eye")],
        "lopsided": [(-0.3, -0.3, "eye"), (0.25, 0.2, "eye"), (0.3, -0.25, "mouth")],
        "cyclops": [(0, -0.1, "eye"), (0, 0.25, "mouth")],
        "three": [(-0.25, -0.1, "eye"), (0.0, -0.1, "eye"), (0.25, -0.1, "eye")],
        "pair": [(-0.2, 0.0, "eye"), (0.2, 0.0, "eye")],
        "grid": [(x, y, "eye") for x in (-0.2, 0.2) for y in (-0.2, 0.2)],
    }
    for dx, dy, kind in layouts[arrangement]:
        p = np.asarray(center) + R @ np.array([dx * s, dy * s])
        if kind == "eye":
            ellipse(img, p, (0.07 * s, 0.04 * s), angle_deg, (225, 230, 230) if rng.random() < 0.5 else dark)
            ellipse(img, p, (0.03 * s, 0.03 * s), 0, dark)
        else:
            ellipse(img, p, (0.14 * s, 0.03 * s), angle_deg, dark)


def distractor(rng: np.random.Generator, img: np.ndarray, smin: float, smax: float) -> None:
    h, w = img.shape[:2]
    s = float(np.exp(rng.uniform(np.log(smin), np.log(smax))))
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    ang = rng.uniform(-90, 90)
    kind = rng.choice(["blob", "blob", "arm", "head_back", "scrambled", "scrambled", "pattern"])
    if kind == "blob":  # face-sized skin ellipse, no features
        _shaded_blob(rng, img, (cx, cy), (0.4 * s * rng.uniform(0.7, 1.3), 0.5 * s), ang, skin_tone(rng))
    elif kind == "arm":
        _shaded_blob(rng, img, (cx, cy), (0.2 * s, 0.9 * s), ang, skin_tone(rng))
        ellipse(img, (cx + 0.85 * s * np.sin(np.radians(-ang)), cy + 0.85 * s * np.cos(np.radians(ang))),
                (0.22 * s, 0.18 * s), ang, skin_tone(rng))
    elif kind == "head_back":  # back of a head: hair ellipse with ears
        skin = skin_tone(rng)
        for side in (-1, 1):
            ellipse(img, (cx + side * 0.4 * s, cy), (0.075 * s, 0.12 * s), 0, scale_col(skin, 0.9))
        _shaded_blob(rng, img, (cx, cy), (0.43 * s, 0.55 * s), rng.uniform(-10, 10), hair_colour(rng))
    elif kind == "scrambled":  # facial marks, wrong geometry, on a skin blob
        col = skin_tone(rng)
        _shaded_blob(rng, img, (cx, cy), (0.4 * s, 0.5 * s), ang, col)
        _features(rng, img, (cx, cy), s, ang, scale_col(col, 0.35),
                  rng.choice(["stacked", "lopsided", "cyclops", "three", "grid"]))
    else:  # eye/mouth-like pattern on a non-skin object (sockets, headlights, buttons)
        col = (float(rng.uniform(0, 255)), float(rng.uniform(0, 255)), float(rng.uniform(0, 120)))
        box = cv2.boxPoints(((cx, cy), (0.8 * s, 0.8 * s * rng.uniform(0.6, 1.4)), ang))
        cv2.fillConvexPoly(img, np.int32(box * 8), col, cv2.LINE_AA, 3)
        _features(rng, img, (cx, cy), s, ang, _col(rng, 0, 60), rng.choice(["pair", "cyclops", "lopsided", "grid"]))


def body(rng: np.random.Generator, img: np.ndarray, center, size: float, roll_deg: float) -> None:
    """Shoulders/torso below a face centred at ``center``; drawn before the face."""
    a = np.radians(roll_deg)
    down = np.array([-np.sin(a), np.cos(a)])  # image-space "down" of the face
    p = np.asarray(center) + down * 1.1 * size
    ellipse(img, p, (size * rng.uniform(0.8, 1.1), 0.5 * size), roll_deg, _col(rng, 10, 240))


def occlude(rng: np.random.Generator, img: np.ndarray, center, size: float, roll_deg: float) -> str:
    """Cover part of a face (about a quarter at most); returns the occluder kind."""
    a = np.radians(roll_deg)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])

    def at(dx, dy):
        return np.asarray(center) + R @ np.array([dx * size, dy * size])

    kind = str(rng.choice(["hand", "bars", "scarf"]))
    if kind == "hand":
        skin = skin_tone(rng)
        side = rng.choice([-1, 1])
        palm = at(side * rng.uniform(0.25, 0.45), rng.uniform(0.1, 0.4))
        ellipse(img, palm, (0.17 * size, 0.2 * size), roll_deg + side * 20, skin)
        for k in range(4):
            tip = palm + R @ np.array([side * (-0.05 + 0.06 * k) * size, -0.38 * size])
            line(img, palm, tip, scale_col(skin, 0.95 + 0.03 * k), 0.07 * size)
    elif kind == "bars":
        col = _col(rng, 0, 200)
        off = rng.uniform(-0.4, 0.4)
        for k in range(int(rng.integers(1, 3))):
            x = off + k * 0.35
            line(img, at(x, -0.9), at(x + rng.uniform(-0.2, 0.2), 0.9), col, rng.uniform(0.04, 0.09) * size)
    else:
        col = _col(rng, 20, 230)
        top = rng.uniform(0.15, 0.38)
        pts = np.stack([at(-0.5, top), at(0.5, top), at(0.55, 0.75), at(-0.55, 0.75)])
        cv2.fillConvexPoly(img, np.int32(pts * 8), col, cv2.LINE_AA, 3)
        for k in range(3):  # stripes on the scarf
            line(img, at(-0.5, top + 0.1 * (k + 1)), at(0.5, top + 0.1 * (k + 1)), scale_col(col, 0.6), 0.02 * size)
    return kind

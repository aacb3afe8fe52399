"""Procedural face scenes with exact labels.

:func:`render_scene` is a pure function of ``(seed, image size, config)``:
it draws a cluttered background, non-face distractors (skin blobs, scrambled
or face-like patterns on objects), then 0..N faces (largest last, so nearer
faces overlap farther ones) with bodies, random size (log-uniform between
``face_size.min`` and ``face_size.max``), in-plane rotation, yaw, skin tone,
hair and sometimes an occluder, and finally a global colour/blur jitter.

Each face label is ``{"box": [x1, y1, x2, y2], "landmarks": [[x, y] * 5]}``
(RetinaFace landmark order, see :mod:`stages.dataset.labels`); the box is the
axis-aligned box of the rotated face contour (forehead to chin, cheek to
cheek, without ears and hair), so it always lies inside the image and holds
all five landmarks.
"""
from __future__ import annotations

import cv2
import numpy as np

from stages.dataset import clutter
from stages.dataset.face import render_face


def rng_for(seed: int, split: str, index: int, stream: str) -> np.random.Generator:
    """Independent generator per (seed, split, image, purpose): order-free, parallel-safe."""
    tag = [int.from_bytes(x.encode()[:8].ljust(8, b"\0"), "little") for x in (split, stream)]
    return np.random.default_rng([seed, tag[0], index, tag[1]])


def _warp(patch, center, roll_deg: float, h: int, w: int):
    """Rotate ``patch`` by ``roll_deg`` about its centre, placed at ``center``.

    Returns (y0, x0, image, alpha[..., None]) for the canvas window it covers
    (image None when it falls outside), and a function mapping patch points."""
    P = patch.image.shape[0]
    M = cv2.getRotationMatrix2D((P / 2, P / 2), -roll_deg, 1.0)
    M[:, 2] += np.asarray(center) - P / 2
    corners = np.array([[0, 0, 1], [P, 0, 1], [0, P, 1], [P, P, 1]], np.float64) @ M.T
    x0, y0 = np.maximum(0, np.floor(corners.min(0))).astype(int)
    x1, y1 = np.minimum([w, h], np.ceil(corners.max(0))).astype(int)
    img = alpha = None
    if x1 > x0 and y1 > y0:
        Mr = M.copy()
        Mr[:, 2] -= (x0, y0)
        img = cv2.warpAffine(patch.image, Mr, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(patch.alpha, Mr, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)[..., None]

    def tf(pts):
        return np.asarray(pts, np.float64) @ M[:, :2].T + M[:, 2]

    return (y0, x0, img, alpha), tf


class _Visibility:
    """Which labelled face owns each pixel, to refuse a face that would hide an earlier one."""

    def __init__(self, h: int, w: int, keep: float = 0.6):
        self.owner = np.zeros((h, w), np.int16)
        self.areas: list[np.ndarray] = []  # each face's contour, rasterised
        self.keep = keep

    def hides_another(self, y0, x0, alpha) -> bool:
        cover = np.zeros(self.owner.shape, bool)
        cover[y0:y0 + alpha.shape[0], x0:x0 + alpha.shape[1]] = alpha[..., 0] > 0.5
        for k, area in enumerate(self.areas, 1):
            visible = area & (self.owner == k)
            if np.count_nonzero(visible & ~cover) < self.keep * np.count_nonzero(area):
                return True
        return False

    def add(self, y0, x0, alpha, outline) -> None:
        self.owner[y0:y0 + alpha.shape[0], x0:x0 + alpha.shape[1]][alpha[..., 0] > 0.5] = len(self.areas) + 1
        area = np.zeros(self.owner.shape, np.uint8)
        cv2.fillConvexPoly(area, np.int32(np.round(cv2.convexHull(np.float32(outline))[:, 0])), 1)
        self.areas.append(area.astype(bool))


def _place(rng, sizes, h, w):
    """Centres for faces of the given sizes: inside the image, not piled up."""
    placed = []
    for s in sizes:
        r = 0.66 * s + 1  # half-diagonal of the face box bounds any rotation
        for _ in range(30):
            c = np.array([rng.uniform(r, w - r), rng.uniform(r, h - r)])
            if all(np.hypot(*(c - pc)) > 0.85 * (s + ps) / 2 for pc, ps in placed):
                placed.append((c, s))
                break
    return placed


def render_scene(rng: np.random.Generator, h: int, w: int, cfg: dict) -> tuple[np.ndarray, list[dict]]:
    """One image (h, w, 3 uint8 BGR) and its face labels."""
    img = clutter.background(rng, h, w)
    smax = min(float(cfg["face_size"]["max"]), 0.9 * min(h, w) / 1.32)
    smin = min(float(cfg["face_size"]["min"]), smax)
    for _ in range(int(rng.integers(cfg["distractors"]["min"], cfg["distractors"]["max"] + 1))):
        clutter.distractor(rng, img, smin, smax)
    n = int(rng.integers(cfg["faces_per_image"]["min"], cfg["faces_per_image"]["max"] + 1))
    sizes = sorted(np.exp(rng.uniform(np.log(smin), np.log(smax), n)))
    placed = [(c, s, float(rng.uniform(-1, 1) * cfg["max_roll_deg"])) for c, s in _place(rng, sizes, h, w)]
    for center, s, roll in placed:  # all bodies first: a body never hides a labelled face
        clutter.body(rng, img, center, s, roll)
    faces, vis = [], _Visibility(h, w)
    for center, s, roll in placed:
        yaw = float(rng.uniform(-1, 1) * cfg["max_yaw_deg"])
        patch = render_face(rng, s, yaw, ss=2 if s < 48 else 1)  # supersample small faces only
        (y0, x0, pimg, alpha), tf = _warp(patch, center, roll, h, w)
        if pimg is None or vis.hides_another(y0, x0, alpha):
            continue  # its hair/neck would cover most of a nearer-placed face: leave it out
        roi = img[y0:y0 + pimg.shape[0], x0:x0 + pimg.shape[1]]
        roi[:] = (roi * (1 - alpha) + pimg * alpha + 0.5).astype(np.uint8)
        lms, outline = tf(patch.landmarks), tf(patch.outline)
        vis.add(y0, x0, alpha, outline)
        if rng.random() < cfg["occlusion_prob"]:
            clutter.occlude(rng, img, center, s, roll)
        x1, y1 = np.maximum(outline.min(0), 0)
        x2, y2 = np.minimum(outline.max(0), [w, h])
        lms = np.clip(lms, [x1, y1], [x2, y2])
        faces.append({"box": [round(float(v), 2) for v in (x1, y1, x2, y2)],
                      "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in lms]})
    gain = rng.uniform(0.85, 1.15) * rng.uniform(0.94, 1.06, 3)  # exposure and white balance
    img = np.clip(img * gain.astype(np.float32), 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 0.9))
    return img, faces

"""``preview.png``: one row per image, one column per variant (clean, low-light,
noisy), each with the face boxes and the five landmarks drawn (landmark
colours in RetinaFace order: red, blue = eyes, green = nose, magenta, cyan =
mouth corners).  Degraded columns are shown as stored, not brightened.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from stages.dataset.degrade import VARIANTS

LM_COLOURS = [(0, 0, 255), (255, 0, 0), (0, 255, 0), (255, 0, 255), (255, 255, 0)]
TILE = 192


def _annotated(img: np.ndarray, faces: list[dict]) -> np.ndarray:
    k = TILE / max(img.shape[:2])
    img = cv2.resize(img, (round(img.shape[1] * k), round(img.shape[0] * k)), interpolation=cv2.INTER_AREA)
    for f in faces:
        x1, y1, x2, y2 = (int(round(v * k)) for v in f["box"])
        cv2.rectangle(img, (x1, y1), (x2, y2), (0, 255, 255), 1, cv2.LINE_AA)
        for (x, y), col in zip(f.get("landmarks") or [], LM_COLOURS):
            cv2.circle(img, (int(round(x * k)), int(round(y * k))), 2, col, -1, cv2.LINE_AA)
    tile = np.full((TILE, TILE, 3), 40, np.uint8)
    tile[:img.shape[0], :img.shape[1]] = img
    return tile


def write_preview(path: Path, split_dir: Path, records: list[dict]) -> None:
    """Grid for ``records`` (entries of a split's index.json) read back from ``split_dir``."""
    head = np.full((24, TILE * len(VARIANTS), 3), 255, np.uint8)
    for j, v in enumerate(VARIANTS):
        cv2.putText(head, f"_{v}", (j * TILE + 6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    rows = [head]
    for r in records:
        tiles = []
        for v in VARIANTS:
            img = cv2.imread(str(split_dir / r["images"][v]))
            tiles.append(_annotated(img, r["faces"]))
        rows.append(np.hstack(tiles))
    if len(rows) == 1:
        rows.append(np.full((TILE, head.shape[1], 3), 40, np.uint8))
    cv2.imwrite(str(path), np.vstack(rows))

"""Detections drawn on an image, the same way in every stage's pictures (train samples, report strip)."""
from __future__ import annotations

import numpy as np


def draw_detections(img_bgr: np.ndarray, dets: np.ndarray, gts: np.ndarray | None = None,
                    min_score: float = 0.5, top: int = 10) -> np.ndarray:
    """A copy of ``img_bgr`` with ground-truth boxes (thin green) and the ``top`` best detections
    scoring >= ``min_score`` (red box, magenta landmarks, score).  ``dets`` rows are YuNet's
    ``[x1, y1, x2, y2, 5 x (x, y), score]``; rows with non-finite coordinates are left out."""
    import cv2

    out = img_bgr.copy()
    dets = np.asarray(dets, np.float32).reshape(-1, 15)
    dets = dets[np.isfinite(dets).all(1) & (dets[:, -1] >= min_score)]
    dets = dets[np.argsort(-dets[:, -1], kind="stable")][:top]
    for g in [] if gts is None else gts:
        x1, y1, x2, y2 = (int(round(v)) for v in g[:4])
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 200, 0), 1)
    for d in dets:
        x1, y1, x2, y2 = (int(round(v)) for v in d[:4])
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 0, 255), 1)
        for k in range(5):
            cv2.circle(out, (int(d[4 + 2 * k]), int(d[5 + 2 * k])), 2, (255, 0, 255), -1)
        cv2.putText(out, f"{d[-1]:.2f}", (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 255), 1)
    return out

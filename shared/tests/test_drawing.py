"""Detections are drawn only above the score threshold, best first, and never from non-finite rows."""
import numpy as np
import pytest

from shared.drawing import draw_detections

cv2 = pytest.importorskip("cv2")


def _det(x, score):
    return [x, 10, x + 20, 30] + [x + 5, 15] * 5 + [score]


def test_threshold_top_and_non_finite():
    img = np.zeros((64, 128, 3), np.uint8)
    dets = np.array([_det(2, 0.9), _det(40, 0.3), _det(80, 0.8), [np.inf] * 14 + [0.99]], np.float32)
    out = draw_detections(img, dets, min_score=0.5, top=1)
    assert img.sum() == 0                                  # the input is not drawn on
    assert out[:, :30].any() and not out[:, 35:].any()     # only the best (x=2) is drawn
    out = draw_detections(img, dets, gts=np.array([[90, 40, 110, 60]]), min_score=0.5)
    assert out[:, 80:105].any() and not out[:, 40:62].any()  # 0.8 drawn, 0.3 not
    assert (out[40:61, 90] == (0, 200, 0)).all(1).any()       # ground truth in green

"""The matching and scoring of chain detections against reference faces, on cases with a known answer."""
import numpy as np
import pytest

from stages.photos.score import score


def test_operating_point_and_ap_known_answer():
    refs = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), np.zeros((0, 4))]
    dets = [np.array([[0, 0, 10, 10, 0.9],        # face 1: tp
                      [1, 1, 10, 10, 0.85],       # face 1 again: a duplicate is a false positive
                      [50, 50, 60, 60, 0.8],      # nothing there: fp
                      [21, 21, 31, 31, 0.3]]),    # face 2 (IoU 81/119 = 0.68) but under the operating point
            np.array([[0, 0, 5, 5, 0.95]])]       # a photo without faces: fp
    s = score(dets, refs, score_thr=0.5, iou_thr=0.5)
    assert (s["n_ref_faces"], s["n_dets"], s["tp"], s["fp"], s["fn"]) == (2, 4, 1, 3, 1)
    assert s["recall"] == 0.5 and s["precision"] == 0.25
    # all detections by score: fp .95, tp .9, fp .85, fp .8, tp .3 -> recall 0.5 at precision 1/2, 1.0 at 2/5
    assert s["ap"] == pytest.approx(0.5 * 0.5 + 0.5 * 0.4)
    assert s["per_photo"] == [{"n_ref": 2, "tp": 1, "fp": 2}, {"n_ref": 0, "tp": 0, "fp": 1}]


def test_iou_threshold_and_empty_cases():
    refs = [np.array([[0, 0, 10, 10]], float)]
    half = [np.array([[0, 0, 10, 5, 0.9]])]          # IoU exactly 0.5: matches at 0.5, not at 0.6
    assert score(half, refs, 0.5, 0.5)["tp"] == 1
    assert score(half, refs, 0.5, 0.6)["tp"] == 0
    none = score([np.zeros((0, 15))], refs, 0.5, 0.5)
    assert none["precision"] is None and none["recall"] == 0.0 and none["ap"] == 0.0
    no_faces = score([np.array([[0, 0, 5, 5, 0.9]])], [np.zeros((0, 4))], 0.5, 0.5)
    assert no_faces["recall"] is None and no_faces["ap"] is None and no_faces["fp"] == 1
    with pytest.raises(ValueError):
        score([], refs)

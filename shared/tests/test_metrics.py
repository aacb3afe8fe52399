"""Metrics against hand-computed values (and SSIM against skimage)."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from shared.losses import psnr_loss
from shared.metrics import (artifact_bytes, average_precision, box_iou, count_macs, count_params,
                            evaluate_detections, landmark_nme, missed_faces, psnr, ssim,
                            top_box_iou)
from shared.metrics.restoration import batch_psnr, batch_ssim


def face(x1, y1, x2, y2, score=None, kps=None):
    row = [x1, y1, x2, y2] + list(kps if kps is not None else [])
    return row + ([score] if score is not None else [])


def test_box_iou():
    iou = box_iou([[0, 0, 10, 10]], [[5, 5, 15, 15], [0, 0, 10, 10], [20, 20, 30, 30],
                                     [0, 0, 10, 5]])
    np.testing.assert_allclose(iou, [[25 / 175, 1.0, 0.0, 0.5]])


def test_ap_two_gt_three_dets():
    gts = [np.array([[0, 0, 10, 10]]), np.array([[0, 0, 20, 20]])]
    dets = [np.array([face(0, 0, 10, 10, 0.9), face(50, 50, 60, 60, 0.8)]),
            np.array([face(1, 1, 20, 20, 0.7)])]
    # sorted: TP (P=1, R=.5), FP (P=.5, R=.5), TP (P=2/3, R=1)
    # AP = 0.5 * 1 + 0.5 * 2/3
    assert average_precision(dets, gts) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # a duplicate detection of an already matched face is a false positive
    dets2 = [np.array([face(0, 0, 10, 10, 0.9), face(0, 0, 10, 10, 0.85)]),
             np.array([face(0, 0, 20, 20, 0.5)])]
    assert average_precision(dets2, gts) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # perfect detections, and nothing detected
    perfect = [np.array([face(0, 0, 10, 10, .6)]), np.array([face(0, 0, 20, 20, .4)])]
    assert average_precision(perfect, gts) == pytest.approx(1.0)
    # FP ranked first: P/R = (0, 0), (.5, .5), (2/3, 1) -> AP = .5 * 2/3 + .5 * 2/3
    first_fp = [np.array([face(0, 0, 10, 10, .6), face(70, 70, 80, 80, .99)]), perfect[1]]
    assert average_precision(first_fp, gts) == pytest.approx(2 / 3)
    assert average_precision([np.zeros((0, 5)), np.zeros((0, 5))], gts) == 0.0


def test_ap_matching_rules_differ_on_overlapping_gt():
    gts = [np.array([[0, 0, 10, 10], [0, 0, 10, 8]])]
    # det A best-matches GT0 (IoU 1); det B best-matches GT0 too (IoU .9) but GT1 (IoU .889)
    dets = [np.array([face(0, 0, 10, 10, 0.9), face(0, 0, 10, 9, 0.8)])]
    assert average_precision(dets, gts, match="unmatched") == pytest.approx(1.0)
    # VOC: B's best GT is taken -> FP; P/R = (1, .5), (.5, .5) -> AP .5
    assert average_precision(dets, gts, match="voc") == pytest.approx(0.5)


def test_top_box_iou_and_missed():
    gts = [np.array([[0, 0, 10, 10], [100, 100, 120, 120]]), np.array([[0, 0, 10, 10]]),
           np.zeros((0, 4))]
    dets = [np.array([face(5, 5, 15, 15, 0.9), face(100, 100, 120, 120, 0.5)]),
            np.zeros((0, 5)), np.array([face(0, 0, 5, 5, 0.9)])]
    # image 0: top box (0.9) IoU 1/7 with GT0; image 1: no detection -> 0; image 2: no GT
    assert top_box_iou(dets, gts) == pytest.approx((25 / 175 + 0.0) / 2)
    np.testing.assert_allclose(top_box_iou(dets, gts, reduce=False), [25 / 175, 0.0])
    # GT0 of image 0 (best IoU 1/7) and the GT of image 1 are missed
    assert missed_faces(dets, gts) == 2
    assert missed_faces(dets, gts, score_thr=0.6) == 3
    assert missed_faces(dets, gts, iou_thr=0.1) == 1


def test_landmark_nme():
    kps = np.array([[30, 40], [40, 40], [35, 45], [31, 50], [39, 50]], float)  # eyes 10 apart
    gt = np.array([face(20, 30, 50, 60, kps=kps.ravel())])
    det_far = face(20, 30, 50, 60, 0.9, kps=(kps + [3, 4]).ravel())  # every point off by 5
    assert landmark_nme([np.array([det_far])], [gt]) == pytest.approx(5 / 10)
    det_mixed = kps.copy()
    det_mixed[2] += [0, 2]  # only the nose off by 2 -> mean error 0.4, NME 0.04
    dets = [np.array([face(20, 30, 50, 60, 0.9, kps=det_mixed.ravel()),
                      face(200, 200, 230, 230, 0.8, kps=kps.ravel())])]  # FP: not counted
    assert landmark_nme(dets, [gt]) == pytest.approx(0.04)
    # RetinaFace "no landmarks" GT (-1) is skipped -> no qualifying face
    gt_nolm = np.array([face(20, 30, 50, 60, kps=[-1] * 10)])
    assert math.isnan(landmark_nme([np.array([det_far])], [gt_nolm]))
    res = evaluate_detections(dets, [gt])
    assert res["ap"] == pytest.approx(1.0) and res["nme"] == pytest.approx(0.04)
    assert res["missed"] == 0 and res["n_gt"] == 1 and res["top_box_iou"] == pytest.approx(1.0)


def test_psnr_known_mse():
    a = np.zeros((4, 8, 8))
    b = a + 0.1  # MSE 0.01 -> 20 dB
    assert psnr(b, a) == pytest.approx(20.0)
    assert psnr(b * 255, a * 255, data_range=255) == pytest.approx(20.0)
    assert psnr(a, a) == math.inf
    c = b.copy()
    c[1] += 0.1  # per-image MSE 0.01 and 0.04 -> 20 dB and 10 log10(25) = 13.979 dB
    assert batch_psnr(c[:2], a[:2]) == pytest.approx((20.0 + 10 * math.log10(25)) / 2)
    assert psnr(c[:2], a[:2]) == pytest.approx(10 * math.log10(1 / 0.025))  # pooled MSE
    assert psnr(torch.full((3, 8, 8), 0.5), torch.full((3, 8, 8), 0.6)) == pytest.approx(20.0)


def test_psnr_loss_is_minus_psnr():
    t = torch.zeros(2, 3, 16, 16)
    p = t + 0.1
    assert psnr_loss(p, t).item() == pytest.approx(-20.0, abs=1e-4)
    p.requires_grad_(True)
    psnr_loss(p, t).backward()
    assert torch.all(p.grad > 0)  # descending the loss moves pred towards target


def test_ssim_matches_skimage():
    skm = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    clean = rng.random((48, 40, 3))
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    ref = skm.structural_similarity(noisy, clean, data_range=1.0, channel_axis=-1, **kw)
    assert ssim(noisy, clean, 1.0) == pytest.approx(ref, abs=1e-3)
    assert abs(ssim(noisy, clean, 1.0) - ref) < 1e-9  # in fact identical (float64)
    n8, c8 = (noisy * 255).round(), (clean * 255).round()
    ref8 = skm.structural_similarity(n8, c8, data_range=255, channel_axis=-1, **kw)
    assert ssim(n8, c8, 255) == pytest.approx(ref8, abs=1e-3)
    ref2 = skm.structural_similarity(noisy[..., 0], clean[..., 0], data_range=1.0, **kw)
    assert ssim(noisy[..., 0], clean[..., 0], 1.0, channel_axis=None) == pytest.approx(ref2, abs=1e-6)
    chw = np.stack([noisy.transpose(2, 0, 1), clean.transpose(2, 0, 1)])
    assert batch_ssim(chw[:1], chw[1:], 1.0) == pytest.approx(ref, abs=1e-6)
    assert ssim(clean, clean) == pytest.approx(1.0)


def test_macs_and_params_by_hand():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_params(conv) == 8 * 3 * 9 + 8
    assert count_macs(conv, (1, 3, 16, 16)) == 16 * 16 * 8 * 3 * 9
    dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    assert count_params(dw) == 72
    assert count_macs(dw, (1, 8, 16, 16)) == 16 * 16 * 8 * 9
    strided = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    assert count_macs(strided, (2, 4, 16, 16)) == 2 * 8 * 8 * 6 * 2 * 9
    up = nn.ConvTranspose2d(4, 2, 2, stride=2)
    assert count_macs(up, (1, 4, 8, 8)) == 8 * 8 * 4 * 2 * 2 * 2
    lin = nn.Linear(10, 5)
    assert count_macs(lin, (3, 10)) == 3 * 5 * 10
    net = nn.Sequential(conv, nn.ReLU(), dw)
    total, table = count_macs(net, (1, 3, 16, 16), per_layer=True)
    assert total == 16 * 16 * 8 * 27 + 16 * 16 * 8 * 9 and set(table) == {"0", "2"}


def test_artifact_bytes(tmp_path):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"x" * 123)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.bin").write_bytes(b"y" * 7)
    assert artifact_bytes(f) == 123
    assert artifact_bytes(tmp_path) == 130

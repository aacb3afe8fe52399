"""Face-detection metrics: box IoU, AP@0.5, top-box IoU, landmark NME, missed faces.

Conventions (numpy, float64):

* boxes are (x1, y1, x2, y2) in continuous pixel coordinates, area = (x2-x1)*(y2-y1)
  (no "+1");
* ``dets`` is a list (one entry per image) of arrays [K, >= 5]: columns 0-3 the box,
  the LAST column the score; with 15 columns (``shared.models.yunet_decode`` output)
  columns 4-13 are the 5 landmarks (x, y);
* ``gts`` is a list of arrays [M, 4] (boxes) or [M, 14] (boxes + 5 landmarks).  GT
  landmarks that are all -1 (the RetinaFace/WIDER "no landmarks" marker) are skipped by NME.

Matching (AP, NME): detections of the whole set sorted by score (stable, descending); each
one goes to the unmatched GT of its image with the highest IoU, if that IoU >= iou_thr
(``match="unmatched"``, the rule of COCO and of this study); ``match="voc"`` instead takes
the GT with the highest IoU overall and counts the detection as a false positive when that
GT is already taken (PASCAL VOC devkit / WIDER eval).  The two differ only on overlapping GTs.

AP is the all-point interpolated area under the precision/recall curve (VOC2010+):
precision is made monotone from the right and summed over the recall steps.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _arr(a, cols: int) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(-1, a.shape[-1] if a.size else cols)


def box_iou(a, b) -> np.ndarray:
    """Pairwise IoU of boxes a [N, 4] and b [M, 4] (x1, y1, x2, y2) -> [N, M]."""
    a = _arr(a, 4)[:, :4]
    b = _arr(b, 4)[:, :4]
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def match_detections(dets: Sequence, gts: Sequence, iou_thr: float = 0.5,
                     match: str = "unmatched"):
    """Greedy matching over the whole set, highest score first.

    Returns (scores [D], tp [D] bool, img_idx [D], det_idx [D], gt_idx [D] (-1 if FP),
    n_gt) with D = all detections sorted by descending score.
    """
    if match not in ("unmatched", "voc"):
        raise ValueError(f"match must be 'unmatched' or 'voc', got {match!r}")
    if len(dets) != len(gts):
        raise ValueError(f"{len(dets)} detection entries for {len(gts)} images")
    dets = [_arr(d, 5) for d in dets]
    gts = [_arr(g, 4) for g in gts]
    img_idx = np.concatenate([np.full(len(d), i, np.int64) for i, d in enumerate(dets)] + [
        np.zeros(0, np.int64)])
    det_idx = np.concatenate([np.arange(len(d)) for d in dets] + [np.zeros(0, np.int64)])
    scores = np.concatenate([d[:, -1] for d in dets] + [np.zeros(0)])
    order = np.argsort(-scores, kind="stable")
    img_idx, det_idx, scores = img_idx[order], det_idx[order], scores[order]
    ious = [box_iou(d, g) for d, g in zip(dets, gts)]
    taken = [np.zeros(len(g), bool) for g in gts]
    gt_idx = np.full(len(scores), -1, np.int64)
    for k, (i, j) in enumerate(zip(img_idx, det_idx)):
        if not len(gts[i]):
            continue
        row = ious[i][j]
        if match == "unmatched":
            row = np.where(taken[i], -1.0, row)
        g = int(np.argmax(row))
        if row[g] >= iou_thr and not taken[i][g]:
            taken[i][g] = True
            gt_idx[k] = g
    n_gt = int(sum(len(g) for g in gts))
    return scores, gt_idx >= 0, img_idx, det_idx, gt_idx, n_gt


def average_precision(dets: Sequence, gts: Sequence, iou_thr: float = 0.5,
                      match: str = "unmatched") -> float:
    """All-point interpolated AP at ``iou_thr`` over the whole set (0.0 if there is no GT)."""
    _, tp, *_, n_gt = match_detections(dets, gts, iou_thr, match)
    if n_gt == 0:
        return 0.0
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def top_box_iou(dets: Sequence, gts: Sequence, reduce: bool = True):
    """Per image with >= 1 GT: IoU of the highest-scoring detection with its best GT
    (0 when the image has no detection).  Mean over those images, or the per-image array."""
    vals = []
    for d, g in zip(dets, gts):
        d, g = _arr(d, 5), _arr(g, 4)
        if not len(g):
            continue
        if not len(d):
            vals.append(0.0)
            continue
        top = d[int(np.argmax(d[:, -1]))]  # first of equal maxima
        vals.append(float(box_iou(top[None, :4], g).max()))
    vals = np.asarray(vals, dtype=np.float64)
    if not reduce:
        return vals
    return float(vals.mean()) if len(vals) else 0.0


def landmark_nme(dets: Sequence, gts: Sequence, iou_thr: float = 0.5,
                 match: str = "unmatched", reduce: bool = True):
    """Landmark NME over matched faces: mean over the 5 points of the L2 error divided by the
    inter-ocular distance (GT points 0 and 1, the eye centres), then the mean over faces.
    Needs dets with 15 columns and gts with 14; returns nan when no face qualifies."""
    _, tp, img_idx, det_idx, gt_idx, _ = match_detections(dets, gts, iou_thr, match)
    errs = []
    for i, j, g in zip(img_idx[tp], det_idx[tp], gt_idx[tp]):
        d_row, g_row = _arr(dets[i], 5)[j], _arr(gts[i], 4)[g]
        if len(d_row) < 15 or len(g_row) < 14:
            raise ValueError("landmark_nme needs dets [K, 15] and gts [M, 14]")
        pred, ref = d_row[4:14].reshape(5, 2), g_row[4:14].reshape(5, 2)
        if np.all(ref == -1):
            continue
        iod = float(np.linalg.norm(ref[0] - ref[1]))
        if iod <= 0:
            continue
        errs.append(float(np.linalg.norm(pred - ref, axis=1).mean() / iod))
    errs = np.asarray(errs, dtype=np.float64)
    if not reduce:
        return errs
    return float(errs.mean()) if len(errs) else float("nan")


def missed_faces(dets: Sequence, gts: Sequence, iou_thr: float = 0.5,
                 score_thr: float = 0.0) -> int:
    """Number of GT faces that no detection with score >= score_thr overlaps at IoU >= iou_thr."""
    missed = 0
    for d, g in zip(dets, gts):
        d, g = _arr(d, 5), _arr(g, 4)
        d = d[d[:, -1] >= score_thr] if len(d) else d
        if not len(g):
            continue
        if not len(d):
            missed += len(g)
            continue
        missed += int(np.sum(box_iou(g, d).max(axis=1) < iou_thr))
    return missed


def evaluate_detections(dets: Sequence, gts: Sequence, iou_thr: float = 0.5,
                        score_thr: float = 0.0, match: str = "unmatched") -> dict:
    """All of the above in one dict: ap, top_box_iou, nme (nan without landmarks),
    missed, n_gt, n_images."""
    n_gt = int(sum(len(_arr(g, 4)) for g in gts))
    has_kps = (all(_arr(d, 5).shape[1] >= 15 for d in dets if len(d))
               and all(_arr(g, 4).shape[1] >= 14 for g in gts if len(g)))
    return {
        "ap": average_precision(dets, gts, iou_thr, match),
        "top_box_iou": top_box_iou(dets, gts),
        "nme": landmark_nme(dets, gts, iou_thr, match) if has_kps else float("nan"),
        "missed": missed_faces(dets, gts, iou_thr, score_thr),
        "n_gt": n_gt,
        "n_images": len(gts),
    }

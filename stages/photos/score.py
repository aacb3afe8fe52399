"""Chain detections vs reference faces: tp / fp / recall / precision at an operating point, AP over all.

Matching is the shared protocol's (``shared.metrics.detection``): detections of the whole set in
descending score, each to the unmatched reference face of its photo with the highest IoU, a true
positive when that IoU >= ``iou_thr``.  ``tp``, ``fp``, ``recall`` and ``precision`` count the
detections scoring >= ``score_thr``; ``ap`` is the all-point AP of every detection given (those
the decoder kept above ``eval.score_thr``).  With no detection at the operating point precision is
``None`` (undefined), with no reference face recall is ``None``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from shared.metrics.detection import average_precision, match_detections


def _at(dets: Sequence, score_thr: float) -> list[np.ndarray]:
    out = []
    for d in dets:
        d = np.asarray(d, np.float64)
        d = d.reshape(-1, d.shape[-1] if d.size else 5)
        out.append(d[d[:, -1] >= score_thr])
    return out


def score(dets: Sequence, refs: Sequence, score_thr: float = 0.5, iou_thr: float = 0.5) -> dict:
    """``dets``: per photo [K, >= 5] (box, ..., score last); ``refs``: per photo [M, >= 4] reference boxes.

    Returns n_ref_faces, n_dets, tp, fp, fn, recall, precision (operating point ``score_thr``),
    ap (all detections) and per_photo [{n_ref, tp, fp}]."""
    if len(dets) != len(refs):
        raise ValueError(f"{len(dets)} detection entries for {len(refs)} photos")
    refs = [np.asarray(r, np.float64) for r in refs]
    refs = [r.reshape(-1, r.shape[-1] if r.size else 4)[:, :4] for r in refs]
    kept = _at(dets, score_thr)
    _, tp, img_idx, *_rest, n_ref = match_detections(kept, refs, iou_thr)
    n_tp, n_det = int(tp.sum()), int(len(tp))
    per = [{"n_ref": int(len(r)), "tp": int(tp[img_idx == i].sum()), "fp": int((~tp[img_idx == i]).sum())}
           for i, r in enumerate(refs)]
    all_dets = _at(dets, -np.inf)
    return {"n_ref_faces": int(n_ref), "n_dets": n_det, "tp": n_tp, "fp": n_det - n_tp, "fn": int(n_ref) - n_tp,
            "recall": n_tp / n_ref if n_ref else None, "precision": n_tp / n_det if n_det else None,
            "ap": average_precision(all_dets, refs, iou_thr) if n_ref else None,
            "score_thr": float(score_thr), "iou_thr": float(iou_thr), "per_photo": per}

"""Bootstrap 95 % intervals by resampling images (numpy only; no torch).

Every function resamples whole *images* with replacement: a resample is a
multiset of image indices, and an image drawn k times contributes its
detections and its ground truth k times.  The interval is the percentile one
(``alpha/2`` and ``1 - alpha/2`` quantiles of the resampled statistic, linear
interpolation); ``value`` is the statistic on the images as given.  Paired
comparisons (``ap_diff_interval``, ``mean_diff_interval``) use the same
resampled indices for both systems, which is what makes them paired: image
difficulty cancels and only the systems' disagreement is left.

The resamples depend only on ``(seed, n_images, n_boot)``: two calls with the
same seed and the same number of images see the same resamples.

AP on a resample is the AP that :func:`shared.metrics.detection.average_precision`
gives on the duplicated lists, computed without building them.  Greedy matching
is per image (a detection can only take a GT of its own image, and the global
score order restricted to one image is that image's own order), so each
detection's TP/FP flag is the same in every copy of its image; a resample is
then the full set's score-sorted detections with weights = how often their
image was drawn, and precision/recall are weighted cumulative sums.  Copies of
one detection have equal scores and equal flags, which the all-point AP counts
the same whether they are one weighted step or k unit steps.  (The one
difference: detections of *different* images with exactly equal scores keep
their full-set order instead of the resample's order.)  1000 resamples of 96
images with a few thousand detections take well under a second.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .detection import _arr, average_precision, match_detections

CHUNK_CELLS = 4_000_000  # resamples x detections handled at once (~32 MB per float64 array)


def resample_indices(n_images: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """[n_boot, n_images] image indices drawn with replacement (the resamples every function uses)."""
    if n_images < 1:
        raise ValueError("bootstrap needs at least one image")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    return np.random.default_rng([int(seed), 0xB0075]).integers(0, n_images, size=(n_boot, n_images))


def resample_counts(n_images: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """[n_boot, n_images]: how often each image is drawn in each resample (rows sum to n_images)."""
    idx = resample_indices(n_images, n_boot, seed)
    flat = idx + n_images * np.arange(n_boot)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * n_images).reshape(n_boot, n_images)


def interval(value: float, boot: np.ndarray, alpha: float, n_images: int) -> dict:
    """{"value", "lo", "hi", "n_boot", "n_images"} from resampled values (percentile interval)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    boot = np.asarray(boot, dtype=np.float64)
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return {"value": float(value), "lo": float(lo), "hi": float(hi), "n_boot": int(boot.size),
            "n_images": int(n_images)}


def bootstrap_metric(statistic: Callable[[np.ndarray], float], n_images: int, n_boot: int = 1000,
                     seed: int = 0, alpha: float = 0.05) -> dict:
    """Generic (and slow: one Python call per resample): ``statistic(indices) -> float``.

    ``statistic`` gets an int array of image indices (all of them, in order, for
    ``value``; a resample for each bootstrap draw)."""
    idx = resample_indices(n_images, n_boot, seed)
    boot = np.array([float(statistic(row)) for row in idx])
    return interval(float(statistic(np.arange(n_images))), boot, alpha, n_images)


# -- per-image scores (PSNR, SSIM, top-box IoU, ...) ------------------------------------------------

def _scores(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if not len(x):
        raise ValueError(f"{name}: no per-image scores")
    if not np.all(np.isfinite(x)):
        bad = int(np.flatnonzero(~np.isfinite(x))[0])
        raise ValueError(f"{name}: per-image score {x[bad]} at image {bad} is not finite "
                         "(PSNR of an exact copy is inf: cap it before bootstrapping)")
    return x


def _mean_boot(x: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    counts = resample_counts(len(x), n_boot, seed)
    return counts @ x / len(x)


def mean_interval(x, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Interval for the mean of one per-image score."""
    x = _scores(x, "mean_interval")
    return interval(x.mean(), _mean_boot(x, n_boot, seed), alpha, len(x))


def mean_diff_interval(a, b, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Paired interval for mean(a) - mean(b), a and b per-image scores of the same images."""
    a, b = _scores(a, "mean_diff_interval: a"), _scores(b, "mean_diff_interval: b")
    if a.shape != b.shape:
        raise ValueError(f"mean_diff_interval: {len(a)} scores in a but {len(b)} in b (same images needed)")
    d = a - b
    return interval(d.mean(), _mean_boot(d, n_boot, seed), alpha, len(d))


# -- AP ---------------------------------------------------------------------------------------------

def _matched(dets: Sequence, gts: Sequence, iou_thr: float, match: str):
    """Full-set matching once: (tp [D] float, image of each detection [D], GTs per image [N])."""
    _, tp, img, *_ = match_detections(dets, gts, iou_thr, match)
    n_gt = np.array([len(_arr(g, 4)) for g in gts], dtype=np.float64)
    return tp.astype(np.float64), img, n_gt


def _weighted_ap(tp: np.ndarray, img: np.ndarray, n_gt: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AP per resample ([B]) from score-sorted detections and [B, N] image counts."""
    out = np.zeros(len(counts))
    if not len(tp):
        return out
    step = max(1, CHUNK_CELLS // len(tp))
    for s in range(0, len(counts), step):
        c = counts[s:s + step].astype(np.float64)
        w = c[:, img]                                   # [b, D] weight of each detection
        wtp = w * tp
        ctp = np.cumsum(wtp, axis=1)
        cfp = np.cumsum(w - wtp, axis=1)
        prec = ctp / np.maximum(ctp + cfp, 1e-12)
        env = np.maximum.accumulate(prec[:, ::-1], axis=1)[:, ::-1]   # precision made monotone from the right
        ngt = c @ n_gt
        area = (wtp * env).sum(axis=1)
        out[s:s + step] = np.where(ngt > 0, area / np.where(ngt > 0, ngt, 1.0), 0.0)
    return out


def _check_images(dets, gts, what: str) -> int:
    if len(dets) != len(gts):
        raise ValueError(f"{what}: {len(dets)} detection entries for {len(gts)} images")
    return len(gts)


def ap_boot(dets: Sequence, gts: Sequence, counts: np.ndarray, iou_thr: float = 0.5,
            match: str = "unmatched") -> np.ndarray:
    """AP on each resample given as image counts [B, N] (see :func:`resample_counts`)."""
    tp, img, n_gt = _matched(dets, gts, iou_thr, match)
    return _weighted_ap(tp, img, n_gt, np.asarray(counts))


def ap_interval(dets: Sequence, gts: Sequence, n_boot: int = 1000, seed: int = 0, iou_thr: float = 0.5,
                alpha: float = 0.05, match: str = "unmatched") -> dict:
    """AP@iou_thr with a bootstrap interval: {"value", "lo", "hi", "n_boot", "n_images"}."""
    n = _check_images(dets, gts, "ap_interval")
    counts = resample_counts(n, n_boot, seed)
    return interval(average_precision(dets, gts, iou_thr, match), ap_boot(dets, gts, counts, iou_thr, match),
                    alpha, n)


def ap_diff_interval(dets_a: Sequence, dets_b: Sequence, gts: Sequence, n_boot: int = 1000, seed: int = 0,
                     iou_thr: float = 0.5, alpha: float = 0.05, match: str = "unmatched") -> dict:
    """Paired interval for AP(a) - AP(b): both systems' detections on the same images, the
    same resamples for both."""
    n = _check_images(dets_a, gts, "ap_diff_interval: dets_a")
    _check_images(dets_b, gts, "ap_diff_interval: dets_b")
    counts = resample_counts(n, n_boot, seed)
    value = average_precision(dets_a, gts, iou_thr, match) - average_precision(dets_b, gts, iou_thr, match)
    boot = ap_boot(dets_a, gts, counts, iou_thr, match) - ap_boot(dets_b, gts, counts, iou_thr, match)
    return interval(value, boot, alpha, n)


__all__ = ["ap_boot", "ap_diff_interval", "ap_interval", "bootstrap_metric", "interval", "mean_diff_interval",
           "mean_interval", "resample_counts", "resample_indices"]

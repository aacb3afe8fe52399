"""Bootstrap intervals: known answers, brute-force agreement, coverage, speed (numpy only)."""
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from shared.metrics.bootstrap import (ap_boot, ap_diff_interval, ap_interval, bootstrap_metric, mean_diff_interval,
                                      mean_interval, resample_counts, resample_indices)
from shared.metrics.detection import average_precision

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"value", "lo", "hi", "n_boot", "n_images"}


def synthetic(n_images, seed=0, miss=0.2, fp=3, jitter=3.0):
    """A detector on random scenes: GTs [M, 14], dets [K, 15] (landmarks unused, score last).

    Matched detections score higher on average than false positives, scores are continuous
    (no ties across images); some images have no GT, some no detection."""
    rng = np.random.default_rng(seed)
    dets, gts = [], []
    for _ in range(n_images):
        m = rng.integers(0, 4)
        xy = rng.uniform(0, 200, (m, 2))
        wh = rng.uniform(15, 60, (m, 2))
        g = np.concatenate([xy, xy + wh], 1)
        gts.append(np.concatenate([g, -np.ones((m, 10))], 1))
        rows = []
        for box in g:
            if rng.random() > miss:
                rows.append(np.r_[box + rng.normal(0, jitter, 4), np.zeros(10), rng.uniform(0.3, 1.0)])
            if rng.random() < 0.15:  # a duplicate: a false positive on a real face
                rows.append(np.r_[box + rng.normal(0, jitter, 4), np.zeros(10), rng.uniform(0.02, 0.6)])
        for _ in range(rng.integers(0, fp + 1)):
            xy = rng.uniform(0, 200, 2)
            rows.append(np.r_[xy, xy + rng.uniform(10, 40, 2), np.zeros(10), rng.uniform(0.02, 0.7)])
        dets.append(np.array(rows) if rows else np.zeros((0, 15)))
    return dets, gts


def brute_ap(dets, gts, idx):
    return average_precision([dets[i] for i in idx], [gts[i] for i in idx])


def test_resampled_ap_equals_ap_of_duplicated_images():
    """The vectorised AP on a resample is exactly average_precision on the lists with images repeated."""
    dets, gts = synthetic(40, seed=1)
    idx = resample_indices(40, 60, seed=3)
    counts = resample_counts(40, 60, seed=3)
    assert (counts.sum(1) == 40).all()
    assert all((np.bincount(row, minlength=40) == c).all() for row, c in zip(idx, counts))
    fast = ap_boot(dets, gts, counts)
    slow = np.array([brute_ap(dets, gts, row) for row in idx])
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    assert fast.std() > 0.005  # the resamples do differ


def test_ap_interval_matches_generic_bootstrap():
    dets, gts = synthetic(30, seed=2)
    fast = ap_interval(dets, gts, n_boot=200, seed=5)
    slow = bootstrap_metric(lambda idx: brute_ap(dets, gts, idx), 30, n_boot=200, seed=5)
    assert set(fast) == KEYS and fast["n_boot"] == 200 and fast["n_images"] == 30
    for k in ("value", "lo", "hi"):
        assert fast[k] == pytest.approx(slow[k], abs=1e-12)
    assert fast["value"] == pytest.approx(average_precision(dets, gts))
    assert fast["lo"] < fast["value"] < fast["hi"]


def test_identical_systems_diff_is_exactly_zero():
    dets, gts = synthetic(50, seed=3)
    r = ap_diff_interval(dets, [d.copy() for d in dets], gts, n_boot=300)
    assert (r["value"], r["lo"], r["hi"]) == (0.0, 0.0, 0.0)
    x = np.random.default_rng(0).normal(30, 3, 50)
    r = mean_diff_interval(x, x.copy())
    assert (r["value"], r["lo"], r["hi"]) == (0.0, 0.0, 0.0)


def test_constant_offset_collapses_to_the_offset():
    b = np.random.default_rng(1).integers(200, 320, 96) / 8.0  # exact in binary: a - b is exactly 1.5
    r = mean_diff_interval(b + 1.5, b)
    assert r["value"] == r["lo"] == r["hi"] == 1.5 and r["n_images"] == 96 and r["n_boot"] == 1000
    wide = mean_interval(b)  # the unpaired means vary a lot; the paired difference not at all
    assert wide["hi"] - wide["lo"] > 0.3


def test_paired_diff_sign_and_value():
    """b misses faces a finds: AP_a - AP_b > 0 with the interval around it; pairing cancels shared spread."""
    dets, gts = synthetic(96, seed=4, miss=0.1)
    rng = np.random.default_rng(9)
    worse = [d[rng.random(len(d)) > 0.3] for d in dets]
    r = ap_diff_interval(dets, worse, gts, seed=1)
    assert r["value"] == pytest.approx(average_precision(dets, gts) - average_precision(worse, gts))
    assert 0 < r["lo"] < r["value"] < r["hi"]
    # a near copy (scores jittered): the image-to-image spread cancels in the paired difference
    near = [np.c_[d[:, :-1], np.clip(d[:, -1] + rng.normal(0, 0.02, len(d)), 0.02, 1)] for d in dets]
    p, a = ap_diff_interval(dets, near, gts, seed=1), ap_interval(dets, gts, seed=1)
    assert p["hi"] - p["lo"] < (a["hi"] - a["lo"]) / 3


def test_width_shrinks_with_n():
    rng = np.random.default_rng(2)
    w = {n: (lambda r: r["hi"] - r["lo"])(mean_interval(rng.normal(0, 1, n), seed=1)) for n in (25, 100, 400)}
    assert w[400] < w[100] < w[25]
    assert w[25] / w[400] == pytest.approx(4.0, rel=0.35)  # ~ 1/sqrt(n)
    ws = ap_interval(*synthetic(24, seed=5))
    wb = ap_interval(*synthetic(384, seed=5))
    assert wb["hi"] - wb["lo"] < (ws["hi"] - ws["lo"]) / 2


def test_coverage_of_the_mean():
    """95 % intervals of a normal sample's mean contain the true mean about 95 % of the time."""
    rng = np.random.default_rng(7)
    trials, hit = 300, 0
    for t in range(trials):
        r = mean_interval(rng.normal(1.0, 2.0, 60), n_boot=400, seed=t)
        hit += r["lo"] <= 1.0 <= r["hi"]
    assert 0.88 <= hit / trials <= 0.99


def test_coverage_of_ap():
    """AP intervals on 96-image sets cover the AP of a 20x larger set from the same detector most of the time."""
    truth = average_precision(*synthetic(4000, seed=100))
    hit = sum(lo <= truth <= hi for lo, hi in
              ((r["lo"], r["hi"]) for r in (ap_interval(*synthetic(96, seed=s), n_boot=400, seed=s)
                                            for s in range(40))))
    assert hit >= 32  # nominal 38 of 40; the percentile bootstrap of AP is a little narrow and biased


def test_deterministic_and_seeded():
    dets, gts = synthetic(30, seed=6)
    assert ap_interval(dets, gts, seed=4) == ap_interval(dets, gts, seed=4)
    assert ap_interval(dets, gts, seed=4) != ap_interval(dets, gts, seed=5)
    r = ap_interval(dets, gts, n_boot=50, alpha=0.5)
    assert r["n_boot"] == 50 and r["lo"] <= r["hi"]


def test_1000_resamples_of_96_images_are_fast():
    dets, gts = synthetic(96, seed=8, fp=40)  # ~2000 detections, like YuNet at score 0.02
    assert sum(len(d) for d in dets) > 1500
    t = time.perf_counter()
    ap_diff_interval(dets, [d[::-1] for d in dets], gts, n_boot=1000)
    assert time.perf_counter() - t < 5.0


def test_no_gt_no_dets_and_errors():
    empty = [np.zeros((0, 15))] * 5
    nogt = [np.zeros((0, 14))] * 5
    assert ap_interval(empty, nogt)["hi"] == 0.0
    one = [np.array([[0, 0, 10, 10] + [0] * 10 + [0.9]])] + [np.zeros((0, 15))] * 4
    r = ap_interval(one, [np.array([[0, 0, 10, 10] + [-1] * 10])] + nogt[:4])
    assert r["value"] == 1.0 and r["lo"] == 0.0 and r["hi"] == 1.0  # resamples without the face: AP 0
    with pytest.raises(ValueError, match="4 detection entries for 5 images"):
        ap_interval(empty[:4], nogt)
    with pytest.raises(ValueError, match=r"per-image score inf at image 1 is not finite"):
        mean_diff_interval([30.0, np.inf], [20.0, 25.0])
    with pytest.raises(ValueError, match="3 scores in a but 2 in b"):
        mean_diff_interval([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="mean_interval: no per-image scores"):
        mean_interval([])


def test_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None; import shared.metrics.bootstrap as b; "
            "print(b.mean_interval([1.0, 2.0, 3.0])['value'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2.0"

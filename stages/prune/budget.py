"""Accuracy-budget search: the largest pruning ratio whose AP drop stays inside a budget.

``search(evaluate, max_drop, lo, hi, probes)`` is pure: ``evaluate(ratio) -> drop`` (the
validation AP drop of the chain pruned at ``ratio`` against FP32, in AP units: 0.01 = one
point) is the only thing it calls.  Order of the probes:

1. ``lo``: if even the smallest ratio breaks the budget, nothing is accepted (``best`` None);
2. ``hi``: if the largest ratio fits, it is the answer;
3. bisection between the largest accepted and the smallest rejected ratio, until ``probes``
   evaluations are spent or the interval is narrower than ``resolution``.

Ratios are rounded to ``resolution`` (0.01 by default) so that the probes are readable and
never repeat.  The answer is the largest *accepted probe*: with a noisy, non-monotone drop
curve it is still a ratio that was measured inside the budget.  Each probe is returned as
``{"probe", "ratio", "drop", "accepted"}`` (the caller adds its own measurements).
"""
from __future__ import annotations

from typing import Callable

TOL = 1e-9  # a drop equal to the budget (up to float rounding) is inside it


def _snap(r: float, resolution: float) -> float:
    return round(round(r / resolution) * resolution, 6)


def search(evaluate: Callable[[float], float], max_drop: float, lo: float, hi: float, probes: int,
           resolution: float = 0.01) -> dict:
    """Bisection over the ratio; returns {best, max_drop, lo, hi, probes: [...], stopped}."""
    if not 0 < lo <= hi < 1:
        raise ValueError(f"prune.budget: need 0 < lo <= hi < 1, got lo={lo}, hi={hi}")
    if probes < 1:
        raise ValueError(f"prune.budget.probes: need at least 1, got {probes}")
    lo, hi = _snap(lo, resolution), _snap(hi, resolution)
    done: list[dict] = []

    def probe(r: float) -> bool:
        drop = float(evaluate(r))
        ok = drop <= max_drop + TOL
        done.append({"probe": len(done) + 1, "ratio": r, "drop": drop, "accepted": ok})
        return ok

    def result(best, stopped):
        return {"best": best, "max_drop": max_drop, "lo": lo, "hi": hi, "probes": done, "stopped": stopped}

    if not probe(lo):
        return result(None, "lo is outside the budget")
    if hi == lo:
        return result(lo, "lo == hi")
    if len(done) >= probes:
        return result(lo, "probes spent")
    if probe(hi):
        return result(hi, "hi is inside the budget")
    good, bad = lo, hi
    while len(done) < probes:
        mid = _snap((good + bad) / 2, resolution)
        if mid <= good or mid >= bad:
            return result(good, "resolution reached")
        if probe(mid):
            good = mid
        else:
            bad = mid
    return result(good, "probes spent")

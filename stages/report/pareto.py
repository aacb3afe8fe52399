"""Pareto front of (cost, quality) points: lower cost and higher quality are better."""
from __future__ import annotations

import math
from typing import Sequence


def pareto_front(costs: Sequence[float], values: Sequence[float]) -> list[int]:
    """Indices of the non-dominated points, sorted by cost.

    Point i is dominated when some j has cost_j <= cost_i and value_j >= value_i with at least
    one strict.  Points with a NaN/None coordinate are never on the front; exact duplicates
    are all kept.
    """
    pts = [(i, float(c), float(v)) for i, (c, v) in enumerate(zip(costs, values))
           if c is not None and v is not None and not math.isnan(float(c)) and not math.isnan(float(v))]
    front = []
    for i, c, v in pts:
        dominated = any((c2 <= c and v2 >= v) and (c2 < c or v2 > v) for _, c2, v2 in pts)
        if not dominated:
            front.append((c, -v, i))
    return [i for _, _, i in sorted(front)]

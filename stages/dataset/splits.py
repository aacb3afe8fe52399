"""Train / test / calibration splits: sizes from config, disjoint, deterministic.

Synthetic images are drawn per split (image ``i`` of split ``s`` comes from
its own seed), so splits are disjoint by construction and one split does not
change when another's size does.  Imported images are dealt out from one
seeded permutation of the usable images: train first, then test, then
calibration.
"""
from __future__ import annotations

import numpy as np

SPLITS = ("train", "test", "calibration")


def sizes(cfg: dict) -> dict[str, int]:
    return {s: int(cfg["splits"][s]) for s in SPLITS}


def assign(n_available: int, want: dict[str, int], seed: int, what: str = "images") -> dict[str, list[int]]:
    """Disjoint index lists into ``range(n_available)``; ValueError if too few."""
    need = sum(want.values())
    if need > n_available:
        parts = " + ".join(f"{want[s]} {s}" for s in SPLITS)
        raise ValueError(f"not enough {what}: {n_available} usable but the splits need {parts} = {need} "
                         "(lower dataset.splits or add data)")
    perm = np.random.default_rng([seed, 0x5917]).permutation(n_available)
    out, start = {}, 0
    for s in SPLITS:
        out[s] = sorted(int(i) for i in perm[start:start + want[s]])
        start += want[s]
    return out

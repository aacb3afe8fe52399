"""Train / test / calibration / val splits: sizes from config, disjoint, deterministic.

Synthetic images are drawn per split (image ``i`` of split ``s`` comes from
its own seed), so splits are disjoint by construction and one split does not
change when another's size does: adding ``val`` left train, test and
calibration byte-identical.  Imported images are dealt out from one seeded
permutation of the usable images: train first, then test, then calibration,
then val.  ``val`` comes last so that the first three get exactly the images
they got before the val split existed (same seed, same sizes).

``val`` is for every selection and search (PTQ cell, loss weights, pruning
budget, mixed precision); ``test`` is only ever reported (``shared.selection``).
"""
from __future__ import annotations

import numpy as np

SPLITS = ("train", "test", "calibration", "val")   # the dealing order of importers: do not reorder


def sizes(cfg: dict) -> dict[str, int]:
    return {s: int(cfg["splits"][s]) for s in SPLITS}


def assign(n_available: int, want: dict[str, int], seed: int, what: str = "images") -> dict[str, list[int]]:
    """Disjoint index lists into ``range(n_available)``; ValueError if too few.

    A split missing from ``want`` gets no images (and no key in the result)."""
    names = [s for s in SPLITS if s in want]
    unknown = sorted(set(want) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split(s) {', '.join(unknown)}; known: {', '.join(SPLITS)}")
    need = sum(want[s] for s in names)
    if need > n_available:
        parts = " + ".join(f"{want[s]} {s}" for s in names if want[s])
        raise ValueError(f"not enough {what}: {n_available} usable but the splits need {parts} = {need} "
                         "(lower dataset.splits or add data)")
    perm = np.random.default_rng([seed, 0x5917]).permutation(n_available)
    out, start = {}, 0
    for s in names:
        out[s] = sorted(int(i) for i in perm[start:start + want[s]])
        start += want[s]
    return out

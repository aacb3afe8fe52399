"""Tiny on-disk datasets in the dataset stage's layout, for the stages' tests (no dataset stage needed).

``write_split(root, split, n, rng, size)`` writes ``n`` random images per variant (clean ``0``,
dark ``1`` / ``2``, noisy ``0_noisy`` / ``1_noisy``) with one face each, and ``index.json``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

VARIANTS = (("0", 1.0), ("1", 0.3), ("2", 0.1), ("0_noisy", 1.0), ("1_noisy", 0.3))


def write_split(root: Path, split: str, n: int, rng: np.random.Generator, size: int = 32) -> Path:
    import cv2
    d = Path(root) / split
    d.mkdir(parents=True, exist_ok=True)
    recs = []
    s = size / 32.0
    for i in range(n):
        clean = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        imgs = {}
        for v, scale in VARIANTS:
            img = (clean * scale).astype(np.uint8)
            if "noisy" in v:
                img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
            name = f"{i}_{v}.png"
            cv2.imwrite(str(d / name), img)
            imgs[v] = name
        recs.append({"id": f"{split}_{i}", "images": imgs,
                     "faces": [{"box": [4.0 * s, 4.0 * s, 20.0 * s, 24.0 * s],
                                "landmarks": [[8 * s, 10 * s], [16 * s, 10 * s], [12 * s, 14 * s], [9 * s, 18 * s],
                                              [15 * s, 18 * s]]}]})
    (d / "index.json").write_text(json.dumps(recs))
    return d

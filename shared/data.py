"""Read the dataset stage's output: splits, images by variant, ground truth as arrays.

``<dataset>/<split>/index.json`` lists every image with its variants
(``0`` clean, ``1``/``2`` low light, ``0_noisy``/``1_noisy``) and its faces
(box x1,y1,x2,y2 + 5 landmarks).  Images are BGR uint8 as ``cv2.imread``
gives them, which is what YuNet / ``cv2.FaceDetectorYN`` expect.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from shared.errors import ExpectedError
from shared.manifest import read_json

VARIANTS = ("0", "1", "2", "0_noisy", "1_noisy")
SPLITS = ("train", "test", "calibration", "val")  # val: selections/searches; test: reported only


class DataError(ExpectedError, RuntimeError):
    pass


@dataclass
class Split:
    root: Path
    records: list[dict]

    def __len__(self) -> int:
        return len(self.records)

    def path(self, i: int, variant: str) -> Path:
        if variant not in VARIANTS:
            raise DataError(f"unknown image variant '{variant}'; known: {', '.join(VARIANTS)}")
        return self.root / self.records[i]["images"][variant]

    def image(self, i: int, variant: str) -> np.ndarray:
        p = self.path(i, variant)
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"{p}: cannot read image (missing or corrupt)")
        return img

    def images(self, variant: str, limit: int | None = None) -> np.ndarray:
        """All images of one variant as uint8 [N, H, W, 3] (BGR)."""
        n = len(self) if limit is None else min(limit, len(self))
        return np.stack([self.image(i, variant) for i in range(n)]) if n else np.zeros((0, 1, 1, 3), np.uint8)

    def gts(self, limit: int | None = None) -> list[np.ndarray]:
        """Per image an array [M, 14]: box (4) + 5 landmarks (x, y), -1 where absent."""
        out = []
        for rec in self.records[:limit]:
            rows = []
            for f in rec["faces"]:
                kps = np.asarray(f.get("landmarks") or [[-1, -1]] * 5, np.float32).reshape(10)
                rows.append(np.concatenate([np.asarray(f["box"], np.float32), kps]))
            out.append(np.stack(rows) if rows else np.zeros((0, 14), np.float32))
        return out


def load_split(dataset_dir: Path, split: str) -> Split:
    p = Path(dataset_dir) / split / "index.json"
    records = read_json(p, DataError, "index")
    if records is None:
        raise DataError(f"{p}: missing (is the dataset stage done? `invoke stage dataset`)")
    return Split(p.parent, records)


def to_float(batch: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW in [0, 1]."""
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


def to_uint8(batch: np.ndarray) -> np.ndarray:
    """float NCHW in [0, 1] -> uint8 NHWC."""
    return (np.clip(batch, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)

"""Calibration sets for the Dataflow Compiler's optimize(): NHWC float32 ``.npy`` per model.

Values are in the compiled model's *input* units, before any on-chip normalization: raw
0..255 pixels for YuNet and for restoration nets whose script normalizes, [0, 1] otherwise.

Which images, and what each model sees, is the run's one calibration set (shared/calibration.py,
the config's top-level ``calibration`` section), the same as AIMET's and ESP-DL's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from shared import calibration
from shared.data import Split
from shared.evaluation import as_fn


def chain_inputs(split: Split, group: dict, config: dict, seed: int) -> dict[str, np.ndarray]:
    """{role: NCHW float32 on the [0, 1] scale} each model of one chain is calibrated on: the run's one
    calibration set (shared/calibration.py, ``config["calibration"]``), the FP32 ONNX nets upstream."""
    feeds = {r: as_fn(info.path) for r, info in group.items() if r in ("enhancer", "denoiser")}
    return calibration.inputs(split, config["calibration"], config["eval"]["variant"], seed, list(group), feeds)


def to_calib(x01_nchw: np.ndarray, scale: float) -> np.ndarray:
    """[0,1]-scale NCHW -> NHWC float32 in the model's input units."""
    return np.ascontiguousarray(x01_nchw.transpose(0, 2, 3, 1) * np.float32(scale), dtype=np.float32)


def save(arr: np.ndarray, path: Path) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr)
    return {"file": path.name, "shape": list(arr.shape), "dtype": str(arr.dtype),
            "min": float(arr.min()), "max": float(arr.max()), "mean": float(arr.mean())}

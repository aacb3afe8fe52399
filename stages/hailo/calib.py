"""Calibration sets for the Dataflow Compiler's optimize(): NHWC float32 ``.npy`` per model.

Values are in the compiled model's *input* units, before any on-chip normalization: raw
0..255 pixels for YuNet and for restoration nets whose script normalizes, [0, 1] otherwise.

``source: chain`` calibrates each model on what the FP32 chain hands it (enhancer: the
low-light input; denoiser: the enhancer's ONNX output; YuNet: 255 x the denoiser's output),
which is what it sees in deployment; ``source: dataset`` uses the dataset's own variants
(enhancer ``1``, denoiser ``0_noisy``, YuNet clean ``0``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from shared import units
from shared.data import Split, to_float
from shared.evaluation import as_fn

def _run(fn, x: np.ndarray, batch: int = 8) -> np.ndarray:
    return np.concatenate([fn(x[i:i + batch])[0] for i in range(0, len(x), batch)])


def chain_inputs(split: Split, group: dict, cfg: dict) -> dict[str, np.ndarray]:
    """{role: NCHW float32 on the [0, 1] scale} each model of one chain gets (FP32 ONNX Runtime)."""
    c = cfg["calibration"]
    n = len(split) if c["images"] is None else min(c["images"], len(split))
    if n == 0:
        raise ValueError(f"{split.root}: the calibration split is empty")
    if c["source"] == "dataset":
        return {role: to_float(split.images(units.train_variant(role), n)) for role in group}
    x = to_float(split.images(c["variant"], n))
    out = {}
    if "enhancer" in group:
        out["enhancer"] = x
        x = _run(as_fn(group["enhancer"].path), x)
    if "denoiser" in group:
        out["denoiser"] = x
        x = _run(as_fn(group["denoiser"].path), x)
    if "yunet" in group:
        out["yunet"] = x
    return out


def to_calib(x01_nchw: np.ndarray, scale: float) -> np.ndarray:
    """[0,1]-scale NCHW -> NHWC float32 in the model's input units."""
    return np.ascontiguousarray(x01_nchw.transpose(0, 2, 3, 1) * np.float32(scale), dtype=np.float32)


def save(arr: np.ndarray, path: Path) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr)
    return {"file": path.name, "shape": list(arr.shape), "dtype": str(arr.dtype),
            "min": float(arr.min()), "max": float(arr.max()), "mean": float(arr.mean())}

"""Calibration inputs per model from the dataset's calibration split, as the chain feeds them.

The enhancer sees the calibration images of ``eval.variant`` (study: ``1_noisy``) in [0, 1];
the denoiser sees the FP32 enhancer's outputs; YuNet sees 255 x the FP32 denoiser's outputs
(raw 0..255 pixels, as in the pipeline and cv2.FaceDetectorYN); the whole pipeline sees the
images.  Each is a list of [1, 3, H, W] float32 tensors (esp-ppq calibrates with batch 1).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from shared.data import load_split, to_float
from shared.evaluation import as_fn


def chain_inputs(dataset_dir: Path, variant: str, n: int, onnx: dict[str, Path]) -> dict[str, np.ndarray]:
    """{model: float32 [N, 3, H, W]} for enhancer, denoiser, yunet, pipeline (FP32 ONNX Runtime upstream)."""
    split = load_split(dataset_dir, "calibration")
    if len(split) == 0:
        raise ValueError(f"{dataset_dir}/calibration: the calibration split is empty (dataset.splits.calibration)")
    x = to_float(split.images(variant, n))
    enhanced = as_fn(onnx["enhancer"])(x)[0] if "enhancer" in onnx else x
    denoised = as_fn(onnx["denoiser"])(enhanced)[0] if "denoiser" in onnx else enhanced
    return {"enhancer": x, "denoiser": enhanced.astype(np.float32), "yunet": (denoised * 255.0).astype(np.float32),
            "pipeline": x}


def as_batches(arr: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(arr[i:i + 1])) for i in range(len(arr))]

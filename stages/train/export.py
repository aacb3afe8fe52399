"""ONNX exports of the trained models, with parity and the OpenCV consumer check.

Files (static shapes, opset from config):
  enhancer.onnx, denoiser.onnx   input [1,3,H,W] float in [0,1]  -> output (same shape)
  yunet.onnx                     input [1,3,H,W] raw 0..255 BGR  -> cls_8 .. kps_32 (OpenCV layout)
  pipeline.onnx                  input [1,3,H,W] float in [0,1]  -> cls_8 .. kps_32
yunet.onnx is loaded by cv2.FaceDetectorYN, the real consumer of YuNet models.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from shared.data import Split
from shared.metrics.cost import artifact_bytes
from shared.models import OUTPUT_NAMES, Pipeline
from shared.models.export import check_parity, export_onnx


def export_all(pipe: Pipeline, out: Path, size: tuple[int, int], opset: int, probe: np.ndarray) -> dict:
    """Export the four graphs; probe is one float32 [1,3,H,W] test image in [0,1]."""
    h, w = size
    shape = (1, 3, h, w)
    x = torch.from_numpy(probe)
    pipe = pipe.cpu().eval()
    with torch.no_grad():
        det_in = pipe.to_detector_input(pipe.restore(x)[1])
    jobs = {
        "enhancer": (pipe.enhancer, ["output"], x),
        "denoiser": (pipe.denoiser, ["output"], x),
        "yunet": (pipe.detector, list(OUTPUT_NAMES), det_in),
        "pipeline": (pipe, list(OUTPUT_NAMES), x),
    }
    report = {}
    for name, (model, names, sample) in jobs.items():
        path = out / f"{name}.onnx"
        export_onnx(model, path, shape, names, opset=opset)
        report[name] = {"file": path.name, "bytes": artifact_bytes(path),
                        "max_abs_diff_vs_torch": float(check_parity(model, path, sample))}
    return report


def opencv_check(onnx_path: Path, split: Split, variant: str, n: int, score_thr: float, nms_iou: float) -> dict:
    """Load yunet.onnx in cv2.FaceDetectorYN and run it on n test images."""
    img = split.image(0, variant)
    h, w = img.shape[:2]
    det = cv2.FaceDetectorYN.create(str(onnx_path), "", (w, h), score_thr, nms_iou, 5000)
    faces = 0
    for i in range(min(n, len(split))):
        _, found = det.detect(split.image(i, variant))
        faces += 0 if found is None else len(found)
    return {"opencv": cv2.__version__, "images": min(n, len(split)), "faces_found": faces, "variant": variant}

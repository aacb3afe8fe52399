"""Metrics of one quantized unit by the shared protocol (shared/evaluation.py).

Detection units (pipeline, detector): AP@0.5, NME, top-box IoU, missed faces on the
eval variant; restoration units (enhancer, denoiser): PSNR/SSIM vs the clean image.
``gap(a, b)`` is the sim-vs-ONNX difference per metric, reported next to both.
"""
from __future__ import annotations

import math

from shared.evaluation import evaluate_detection, evaluate_restoration
from stages.quantize.candidates import input_scale, source_variant

KEYS = ("ap", "nme", "top_box_iou", "missed", "psnr", "ssim")


def evaluate(system, name: str, test, proto) -> dict:
    if name in ("pipeline", "detector"):
        m = evaluate_detection(system, test, proto, input_range=input_scale(name))
    else:
        m = evaluate_restoration(system, test, source_variant(name, proto.variant), "0", proto.limit,
                                 proto.batch)
    return {k: m[k] for k in KEYS if k in m}


def gap(sim: dict, onnx: dict) -> dict:
    out = {}
    for k, v in sim.items():
        w = onnx.get(k)
        if isinstance(v, (int, float)) and isinstance(w, (int, float)) and not (math.isnan(v) or math.isnan(w)):
            out[k] = float(w) - float(v)
    return out


def max_gap(g: dict) -> float:
    """Largest gap on a comparable scale (AP/IoU/SSIM in [0,1], PSNR in dB / 100)."""
    scaled = [abs(v) / (100.0 if k == "psnr" else 1.0) for k, v in g.items() if k != "missed"]
    return max(scaled) if scaled else 0.0

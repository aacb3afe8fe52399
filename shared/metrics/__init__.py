"""Evaluation metrics shared by every stage: detection (AP, IoU, NME, missed faces),
restoration (PSNR, SSIM) and cost (parameters, MACs, artifact bytes).

``cost`` needs torch; it is imported on first use so that light images (numpy
only) can use the detection and restoration metrics.
"""
from .detection import (average_precision, box_iou, evaluate_detections, landmark_nme,
                        match_detections, missed_faces, top_box_iou)
from .restoration import batch_psnr, batch_ssim, mse, psnr, ssim

_COST = ("artifact_bytes", "count_macs", "count_params")


def __getattr__(name):
    if name in _COST:
        from . import cost
        return getattr(cost, name)
    raise AttributeError(name)


__all__ = [*_COST, "average_precision", "box_iou", "evaluate_detections", "landmark_nme",
           "match_detections", "missed_faces", "top_box_iou", "batch_psnr", "batch_ssim", "mse", "psnr", "ssim"]

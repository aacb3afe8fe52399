"""The one evaluation protocol every stage uses (train, prune, quantize, esp, hailo, report).

A *system* is anything that maps a float32 NCHW batch to outputs:

* a ``torch.nn.Module`` (run under ``no_grad`` in eval mode),
* a path to an ONNX file (run in ONNX Runtime, one image at a time: static shapes),
* any Python callable ``fn(batch) -> array | list of arrays``.

Detection (``evaluate_detection``): the test split's degraded images (variant
from config, study: ``1_noisy``) go through the system, YuNet's outputs are
decoded exactly like ``cv2.FaceDetectorYN`` (score threshold and NMS IoU from
config, study 0.02 / 0.45), and AP@0.5, landmark NME, top-box IoU and missed
faces are computed against the labels.  ``input_range`` says whether the
system takes [0, 1] images (the pipeline, restoration nets) or raw 0..255
pixels (the bare detector, as OpenCV feeds it).

Restoration (``evaluate_restoration``): PSNR and SSIM of the system's output
against the clean ``_0`` image, next to the same figures for the degraded input.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from shared.data import Split, to_float
from shared.metrics.detection import evaluate_detections
from shared.metrics.restoration import psnr, ssim
from shared.models.yunet_decode import decode


@dataclass(frozen=True)
class Protocol:
    variant: str = "1_noisy"     # which degraded images detection runs on
    score_thr: float = 0.02
    nms_iou: float = 0.45
    iou_thr: float = 0.5
    limit: int | None = None     # first N test images (None: all)
    batch: int = 8

    @classmethod
    def from_config(cls, cfg: dict) -> "Protocol":
        e = cfg["eval"]
        return cls(e["variant"], e["score_thr"], e["nms_iou"], e["iou_thr"], e["limit"], e["batch"])


def _has_qdq(model) -> bool:
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def is_qdq(path) -> bool:
    """Does the ONNX file hold QuantizeLinear / DequantizeLinear nodes (an int8 QDQ graph)?"""
    import onnx
    return _has_qdq(onnx.load(str(path), load_external_data=False))


def accuracy_mode(path) -> str:
    """The ``shared.ort_runtime`` mode a file's accuracy is measured in, decided here for every stage:

    * FP32 graphs and QDQ graphs whose int32 biases sit at ``x_scale * w_scale`` (every file the
      quantize stage writes: ``shared.qdq_bias``): ``exact``, the fused kernels latency is timed
      with, which then compute the file's int8 semantics;
    * other QDQ graphs: ``reference`` (Q/DQ unfused), because ONNX Runtime 1.23 fuses a Conv whose bias
      scale differs into kernels that then compute another function (microsoft/onnxruntime#24711)."""
    import onnx
    from shared.qdq_bias import mismatched
    model = onnx.load(str(path), load_external_data=False)
    return "exact" if not _has_qdq(model) or mismatched(model) == 0 else "reference"


def ort_session(path, mode: str | None = None):
    """An ONNX Runtime CPU session for measuring accuracy (``shared.ort_runtime.open_session``), in
    :func:`accuracy_mode` unless ``mode`` is given (``exact``, ``reference``, ``fast``)."""
    from shared.ort_runtime import open_session
    return open_session(path, mode or accuracy_mode(path))


def as_fn(system) -> Callable[[np.ndarray], list[np.ndarray]]:
    """Wrap a torch module, an ONNX path (see :func:`ort_session`), an ONNX Runtime session or a
    callable as fn(float32 NCHW) -> list of arrays."""
    if isinstance(system, (str, Path)) or (hasattr(system, "get_inputs") and hasattr(system, "run")):
        sess = ort_session(system) if isinstance(system, (str, Path)) else system
        name = sess.get_inputs()[0].name

        def run_onnx(x):
            outs = [sess.run(None, {name: x[i:i + 1]}) for i in range(len(x))]
            return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]
        return run_onnx
    try:
        import torch
    except ImportError:  # a light image without torch can still evaluate ONNX files and callables
        torch = None
    if torch is not None and isinstance(system, torch.nn.Module):
        def run_torch(x):
            system.eval()
            dev = next(system.parameters()).device
            with torch.no_grad():
                out = system(torch.from_numpy(x).to(dev))
            out = out if isinstance(out, (list, tuple)) else [out]
            return [o.float().cpu().numpy() for o in out]
        return run_torch
    if callable(system):
        return lambda x: [np.asarray(o) for o in _as_list(system(x))]
    raise TypeError(f"cannot evaluate a {type(system).__name__}: give a torch module, an ONNX path or a callable")


def _as_list(out) -> Sequence:
    return out if isinstance(out, (list, tuple)) else [out]


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def detect(system, split: Split, proto: Protocol, variant: str | None = None,
           input_range: float = 1.0) -> list[np.ndarray]:
    """Decoded faces per image ([K, 15]: box, 5 landmarks, score) for the split's images."""
    fn = as_fn(system)
    n = len(split) if proto.limit is None else min(proto.limit, len(split))
    dets: list[np.ndarray] = []
    for s in _batches(n, proto.batch):
        imgs = np.stack([split.image(i, variant or proto.variant) for i in range(s.start, s.stop)])
        h, w = imgs.shape[1:3]
        outs = fn(to_float(imgs) * np.float32(input_range))
        dets += decode(outs, (w, h), proto.score_thr, proto.nms_iou)
    return dets


def evaluate_detection(system, split: Split, proto: Protocol, variant: str | None = None,
                       input_range: float = 1.0) -> dict:
    dets = detect(system, split, proto, variant, input_range)
    m = evaluate_detections(dets, split.gts(len(dets)), proto.iou_thr)
    m["variant"] = variant or proto.variant
    return m


def evaluate_restoration(system, split: Split, src: str, dst: str = "0", limit: int | None = None,
                         batch: int = 8) -> dict:
    """PSNR/SSIM (dB, [0,1] range) of system(src) vs dst, and of the untouched src vs dst."""
    fn = as_fn(system)
    n = len(split) if limit is None else min(limit, len(split))
    scores = {"psnr": [], "ssim": [], "psnr_input": [], "ssim_input": []}
    for s in _batches(n, batch):
        x = to_float(np.stack([split.image(i, src) for i in range(s.start, s.stop)]))
        y = to_float(np.stack([split.image(i, dst) for i in range(s.start, s.stop)]))
        out = np.clip(fn(x)[0], 0.0, 1.0)
        for k in range(len(x)):
            scores["psnr"].append(psnr(out[k], y[k]))
            scores["ssim"].append(ssim(out[k], y[k], channel_axis=0))
            scores["psnr_input"].append(psnr(x[k], y[k]))
            scores["ssim_input"].append(ssim(x[k], y[k], channel_axis=0))
    out = {k: float(np.mean(v)) if v else float("nan") for k, v in scores.items()}
    out.update(src=src, dst=dst, n_images=n)
    return out

"""Deployable INT8 ONNX out of a QuantSim, its encodings, sizes and ONNX Runtime latency.

``export_qdq`` writes ``<stem>.onnx`` with ``aimet_torch.onnx.export``: QuantizeLinear /
DequantizeLinear in the graph; with ``int8_weights`` (``prequantize_constants``) the
weights are stored as INT8 (bias INT32) initializers followed by DequantizeLinear, so
the file is a truly int8-weight model; its int32 biases are then re-quantized to
``x_scale * w_scale`` (``shared.qdq_bias``), the scale ONNX Runtime's fused kernels assume; and ``<stem>.encodings.json`` (AIMET encodings:
``sim.save_encodings_to_json``).  ``weight_bytes`` sums the initializers by dtype.
``latency`` times ONNX Runtime sessions (1 thread and all threads) on one input.
"""
from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from shared.models import OUTPUT_NAMES
from shared.ort_runtime import open_session
from shared.qdq_bias import canonicalize_file
from shared.timing import timed


def output_names(name: str) -> list[str]:
    return list(OUTPUT_NAMES) if name in ("pipeline", "detector") else ["output"]


def export_qdq(sim, name: str, dummy: torch.Tensor, stem: Path, opset: int, int8_weights: bool = True) -> dict:
    import aimet_torch.onnx as aonnx
    stem.parent.mkdir(parents=True, exist_ok=True)
    onnx_path = stem.with_suffix(".onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aonnx.export(sim.model, (dummy[:1],), str(onnx_path), input_names=["input"],
                     output_names=output_names(name), opset_version=opset, dynamo=False,
                     prequantize_constants=int8_weights)
    bias = canonicalize_file(onnx_path)   # int32 biases at x_scale * w_scale: the fused kernels are then exact
    sim.save_encodings_to_json(str(stem.parent), stem.name + ".encodings")
    return {"onnx": onnx_path.name, "encodings": stem.name + ".encodings.json", **weight_bytes(onnx_path),
            "bias_rescaled": bias["rescaled"], "bias_max_change": bias["max_bias_change"]}


def export_fp32(model, name: str, dummy: torch.Tensor, path: Path, opset: int) -> Path:
    from shared.models.export import export_onnx
    return Path(export_onnx(model, path, tuple(dummy[:1].shape), output_names(name), opset))


def weight_bytes(path: Path) -> dict:
    """File bytes, initializer bytes and the initializer dtypes of an ONNX model."""
    import onnx
    from onnx import numpy_helper
    m = onnx.load(str(path))
    dtypes, total = Counter(), 0
    for t in m.graph.initializer:
        arr = numpy_helper.to_array(t)
        dtypes[onnx.TensorProto.DataType.Name(t.data_type)] += int(arr.size)
        total += int(arr.nbytes)
    ops = Counter(n.op_type for n in m.graph.node)
    return {"file_bytes": os.path.getsize(path), "weight_bytes": total, "weight_dtypes": dict(dtypes),
            "qdq_nodes": ops.get("QuantizeLinear", 0) + ops.get("DequantizeLinear", 0)}


def latency(path: Path, x: np.ndarray, runs: int, threads: int) -> dict:
    """Median / mean ms per image in ONNX Runtime (CPU EP) with ``threads`` intra-op threads (0 = all)."""
    sess = open_session(path, "exact", threads)     # the kernels the rows are evaluated with
    feed = {sess.get_inputs()[0].name: x[:1].astype(np.float32)}
    t = timed(lambda: sess.run(None, feed), warmup=1, runs=runs)
    return {"median_ms": t["median_ms"], "mean_ms": t["mean_ms"], "runs": runs, "threads": threads or (os.cpu_count() or 1)}


def ort_static_int8(fp32: Path, calib: list[np.ndarray], out: Path) -> Path:
    """ONNX Runtime's own static INT8 quantization of ``fp32`` (QDQ, per-channel s8 weights, u8
    activations, MinMax on ``calib``): the reference for what ORT's int8 kernels give on this CPU."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {name: x[:1].astype(np.float32)}

    out.parent.mkdir(parents=True, exist_ok=True)
    pre = out.with_name(out.stem + "_pre.onnx")
    try:
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        pre.unlink(missing_ok=True)
    return out


def bench_pair(fp32: Path, int8: Path, x: np.ndarray, runs: int, reference: Path | None = None) -> dict:
    """FP32 vs INT8 ONNX side by side, 1 thread and all threads, in one process; with ``reference``
    (ONNX Runtime's own INT8 of the same FP32 graph) timed in the same loop."""
    out = {}
    for label, threads in (("1_thread", 1), ("all_threads", 0)):
        a, b = latency(fp32, x, runs, threads), latency(int8, x, runs, threads)
        out[label] = {"fp32_ms": a["median_ms"], "int8_ms": b["median_ms"], "threads": a["threads"],
                      "speedup": a["median_ms"] / b["median_ms"] if b["median_ms"] else float("nan")}
        if reference is not None:
            c = latency(reference, x, runs, threads)
            out[label].update(ort_int8_ms=c["median_ms"], ort_int8_speedup=a["median_ms"] / c["median_ms"])
    return out

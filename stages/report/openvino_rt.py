"""OpenVINO, the second host runtime (Intel CPUs; NNCF's native target), beside ONNX Runtime.

The same ONNX files ONNX Runtime measures are read by ``openvino.Core`` directly (QDQ graphs
become FakeQuantize, which OpenVINO's low-precision transformations run with int8 kernels).
Per whole system (a pipeline file): accuracy by the shared protocol (``fn`` is an ordinary
callable system for ``shared.evaluation``) and latency with 1 thread and with every core,
timed in the same passes as ONNX Runtime (``request_call``; ``stages.report.steps.time_files``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def available() -> str | None:
    """None when OpenVINO imports, else why not (the report then says so)."""
    try:
        import openvino  # noqa: F401
    except ImportError as e:
        return f"skipped: needs the openvino package ({e}); it is pinned in docker/report/requirements.txt"
    return None


def compiled(path: Path, threads: int = 0):
    """An OpenVINO CPU model of ``path``: the latency hint, ``threads`` inference threads (0: all), and
    f32 inference precision: on CPUs with bf16 units (AVX512-BF16, AMX) the plugin would otherwise run
    FP32 graphs in bf16 (measured here: errors of 1e-2 on a 3x3 conv), which is not the file's arithmetic."""
    import openvino as ov
    cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if threads > 0:
        cfg["INFERENCE_NUM_THREADS"] = threads
    core = ov.Core()
    return core.compile_model(core.read_model(str(path)), "CPU", cfg)


def as_system(model):
    """fn(float32 NCHW batch) -> outputs in the graph's order, one image at a time (static shapes)."""
    def run(x):
        per = [[np.asarray(v) for v in model(x[i:i + 1]).values()] for i in range(len(x))]
        return [np.concatenate([p[k] for p in per]) for k in range(len(per[0]))]
    return run


def version() -> str:
    import openvino as ov
    return ov.get_version()


def accuracy(path: Path, split, proto, threads: int = 0) -> float:
    """AP of one whole system in OpenVINO by the shared protocol (test split), ``threads`` inference threads."""
    from shared.evaluation import evaluate_detection
    return float(evaluate_detection(as_system(compiled(path, threads)), split, proto)["ap"])


def request_call(path: Path, threads: int):
    """fn() running ``path`` once in OpenVINO on a fixed input, ``threads`` inference threads (0: all)."""
    model = compiled(path, threads)
    shape = [d if d > 0 else 1 for d in model.inputs[0].get_partial_shape().get_min_shape()]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    req = model.create_infer_request()
    return lambda: req.infer([x])


def latency_key(threads: int) -> str:
    """The result column of OpenVINO's latency at ``threads`` (``ov_1_ms``, ``ov_all_ms``)."""
    return f"ov_{'all' if threads <= 0 else threads}_ms"

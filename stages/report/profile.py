"""Where the time goes: ONNX Runtime's per-node profile of a whole-system file, grouped by model.

``profile(path)`` runs the file in an ``exact`` session (shared/ort_runtime.py, the kernels the
results are timed with) with ONNX Runtime profiling on, and sums the node kernel times by model
(the first component of the exported node names: ``/enhancer/...``, ``/denoiser/...``,
``/detector/...``; fused Q/DQ and layout nodes without one are ``other``) and by operator type.
``peak_gmacs(threads)`` measures what ONNX Runtime reaches on this CPU on a large FP32 MatMul:
the roof a net's achieved GMAC/s (MACs / latency) is compared with, so a reader sees whether a
net is compute-bound (near the roof) or bound by memory and per-node overhead (far below it).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from shared.ort_runtime import open_session
from stages.report.latency import probe_input

MODELS = ("enhancer", "denoiser", "detector")


def model_of(node_name: str) -> str:
    head = node_name.lstrip("/").split("/", 1)[0]
    return head if head in MODELS else "other"


def summarise(events: list[dict], n_runs: int) -> dict:
    """Per-run milliseconds by model and by operator type from a profile trace's Node events."""
    by_model, by_op = defaultdict(float), defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        ms = e["dur"] / 1e3 / n_runs
        by_model[model_of(e["name"][:-len("_kernel_time")])] += ms
        by_op[e.get("args", {}).get("op_name", "?")] += ms
    total = sum(by_model.values())
    return {"total_ms": total, "by_model_ms": dict(sorted(by_model.items(), key=lambda kv: -kv[1])),
            "by_op_ms": dict(sorted(by_op.items(), key=lambda kv: -kv[1])), "runs": n_runs}


def profile(path: Path, input_range: float = 1.0, runs: int = 10, threads: int = 1) -> dict:
    with tempfile.TemporaryDirectory() as d:
        sess = open_session(path, "exact", threads, profile_prefix=os.path.join(d, "ort"))
        feed = probe_input(sess, input_range)
        for _ in range(runs):
            sess.run(None, feed)
        trace = sess.end_profiling()
        events = json.loads(Path(trace).read_text())
    import onnx

    from stages.report.onnx_cost import macs_by_prefix
    out = summarise(events, runs)
    out["threads"] = threads
    out["macs_by_model"] = macs_by_prefix(onnx.load(str(path)), model_of)
    return out


def peak_gmacs(threads: int = 1, n: int = 1024, runs: int = 5) -> float:
    """GMAC/s of ONNX Runtime on an n x n x n FP32 MatMul (best of ``runs``), ``threads`` threads."""
    import onnx
    from onnx import TensorProto, helper
    b = np.random.default_rng(0).random((n, n), dtype=np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "peak",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
                          [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
                          [onnx.numpy_helper.from_array(b, "b")])
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "peak.onnx"
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(p))
        sess = open_session(p, "exact", threads)
    a = {"a": np.random.default_rng(1).random((n, n), dtype=np.float32)}
    sess.run(None, a)
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, a)
        best = min(best, time.perf_counter() - t0)
    return n ** 3 / best / 1e9


def markdown(profiles: dict[str, dict], peak: float | None) -> str:
    """One table per profiled file: ms per model, the top operator types, achieved GMAC/s."""
    if not profiles:
        return "No whole-system file to profile.\n"
    lines = []
    if peak:
        lines += [f"ONNX Runtime's roof on this CPU: {peak:.1f} GMAC/s (FP32 1024³ MatMul, 1 thread).", ""]
    lines += ["| file | model | ms / frame (1 thread) | share | MACs | GMAC/s | of roof |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, p in profiles.items():
        for model, ms in p["by_model_ms"].items():
            macs = (p.get("macs_by_model") or {}).get(model)
            rate = macs / ms / 1e6 if macs and ms else None
            lines.append(f"| {name} | {model} | {ms:.2f} | {100 * ms / p['total_ms']:.0f} % | "
                         + (f"{macs / 1e6:.1f} M" if macs else "–") + " | "
                         + (f"{rate:.1f}" if rate else "–") + " | "
                         + (f"{100 * rate / peak:.0f} %" if rate and peak else "–") + " |")
    lines += ["", "Top operator types (ms / frame, 1 thread): "
              + "; ".join(f"**{n}**: " + ", ".join(f"{op} {ms:.2f}" for op, ms in list(p["by_op_ms"].items())[:5])
                          for n, p in profiles.items()), ""]
    return "\n".join(lines)

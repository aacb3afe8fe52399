"""Where the time goes: ONNX Runtime's per-node profile of a whole-system file, grouped by model.

``profile(path)`` runs the file in an ``exact`` session (shared/ort_runtime.py, the kernels the
results are timed with) with ONNX Runtime profiling on, and sums the node kernel times by model
(the first component of the exported node names: ``/enhancer/...``, ``/denoiser/...``,
``/detector/...``; fused Q/DQ and layout nodes without one are ``other``), by operator type and
by layer kind (:func:`kind_of`: depthwise kxk, pointwise 1x1, dense kxk, transposed conv, from the
weight shape ONNX Runtime records for each conv node, fused int8 ones included), so an FP32 and an
INT8 file can be compared kind by kind (an int8 kernel that is slower than its float one shows),
and by resolution (:func:`scale_of`: a node's output height against the input's, ``1/1`` ...
``1/32``), so a pruned file shows where its time stays: the full-resolution layers keep their
few channels (the first and last layers are never pruned, ``round_to`` keeps at least one
multiple), so the MACs removed at coarse levels buy less time than their share.
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


def _event_shapes(args: dict, key: str = "input_type_shape") -> list[list[int]]:
    """The input (or ``output_type_shape``: output) shapes of a profiled node ([{dtype: shape}, ...])."""
    return [next(iter(d.values()), []) if isinstance(d, dict) else [] for d in args.get(key, [])]


def conv_kind(w: list[int], depthwise: bool) -> str:
    """``depthwise kxk``, ``pointwise 1x1`` or ``dense kxk`` of a conv with weight shape ``w``."""
    if depthwise:
        return f"depthwise {w[2]}x{w[3]}"
    return "pointwise 1x1" if w[2:] == [1, 1] else f"dense {w[2]}x{w[3]}"


def kind_of(args: dict) -> str:
    """Layer kind of a profiled node: ``depthwise 5x5``, ``pointwise 1x1``, ``dense 3x3``,
    ``transposed conv``, or ``non-conv`` (the weight: the first 4-D input after the data)."""
    op = args.get("op_name", "")
    if "ConvTranspose" in op:
        return "transposed conv"
    if "Conv" not in op:
        return "non-conv"
    w = next((list(s) for s in _event_shapes(args)[1:] if len(s) == 4), None)
    if w is None:
        return "conv (shape unknown)"
    x = _event_shapes(args)[0]
    return conv_kind(w, w[1] == 1 and len(x) == 4 and x[1] > 1)


def graph_kinds(model, shapes: dict[str, list[int]]) -> dict[str, str]:
    """{node name: layer kind} of the conv nodes of an ONNX graph (``shapes``: ``onnx_cost.tensor_shapes``,
    which carry a QDQ weight's shape through its DequantizeLinear). ONNX Runtime's fused int8 convs
    drop the weight from what the profile records, but keep the original node's name."""
    from stages.report.onnx_cost import conv_weight, node_attr
    out = {}
    for n in model.graph.node:
        if not n.name or n.op_type not in ("Conv", "QLinearConv", "ConvTranspose"):
            continue
        w = conv_weight(n, shapes)
        if n.op_type == "ConvTranspose":
            out[n.name] = "transposed conv"
        elif w is not None and len(w) == 4:
            out[n.name] = conv_kind(w, node_attr(n, "group", 1) > 1 and w[1] == 1)
    return out


def _named(name: str, table: dict[str, str]) -> str | None:
    """``table``'s entry for a profiled node: its own name's, else that of the longest graph node name it
    starts with (a fused node is named after the node it replaced, plus a suffix)."""
    if name in table:
        return table[name]
    best = max((k for k in table if name.startswith(k)), key=len, default=None)
    return table[best] if best is not None else None


def _kind(name: str, args: dict, kinds: dict[str, str]) -> str:
    found = _named(name, kinds) if name in kinds or "Conv" in args.get("op_name", "") else None
    return found if found is not None else kind_of(args)


def scale_of(shape: list[int], height: int) -> str:
    """``1/k`` of a 4-D (NCHW) output ``shape`` against the input ``height``; ``other`` for anything else."""
    if len(shape) != 4 or not shape[2] or not height:
        return "other"
    return f"1/{max(1, round(height / shape[2]))}"


def graph_scales(model, shapes: dict[str, list[int]], height: int) -> dict[str, str]:
    """{node name: its output's resolution} of the nodes of an ONNX graph with a 4-D output."""
    return {n.name: scale_of(shapes.get(n.output[0], []), height) for n in model.graph.node
            if n.name and n.output and len(shapes.get(n.output[0], [])) == 4}


def _scale(name: str, args: dict, scales: dict[str, str], height: int) -> str:
    found = _named(name, scales)
    if found is not None:
        return found
    out = _event_shapes(args, "output_type_shape")   # a node the graph does not name (layout, Q/DQ)
    return scale_of(list(out[0]) if out else [], height)


def _by_value(d: dict) -> dict:
    return dict(sorted(d.items(), key=lambda kv: -kv[1]))


def summarise(events: list[dict], n_runs: int, kinds: dict[str, str] | None = None,
              scales: dict[str, str] | None = None, height: int = 0) -> dict:
    """Per-run milliseconds by model, by operator type, by layer kind and by resolution from a trace's
    Node events (``kinds``, ``scales``: :func:`graph_kinds`, :func:`graph_scales` of the profiled file)."""
    by_model, by_op, by_kind, by_scale = defaultdict(float), defaultdict(float), defaultdict(float), defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        ms = e["dur"] / 1e3 / n_runs
        args, name = e.get("args", {}), e["name"][:-len("_kernel_time")]
        by_model[model_of(name)] += ms
        by_op[args.get("op_name", "?")] += ms
        by_kind[_kind(name, args, kinds or {})] += ms
        by_scale[_scale(name, args, scales or {}, height)] += ms
    total = sum(by_model.values())
    return {"total_ms": total, "by_model_ms": _by_value(by_model), "by_op_ms": _by_value(by_op),
            "by_kind_ms": _by_value(by_kind), "by_scale_ms": _by_value(by_scale), "runs": n_runs}


def profile(path: Path, input_range: float = 1.0, runs: int = 10, threads: int = 1) -> dict:
    with tempfile.TemporaryDirectory() as d:
        sess = open_session(path, "exact", threads, profile_prefix=os.path.join(d, "ort"))
        feed = probe_input(sess, input_range)
        for _ in range(runs):
            sess.run(None, feed)
        trace = sess.end_profiling()
        events = json.loads(Path(trace).read_text())
    import onnx

    from stages.report.onnx_cost import macs_by_prefix, tensor_shapes
    model = onnx.load(str(path))
    shapes = tensor_shapes(model)       # one shape inference for the kinds and both MAC groupings
    kinds = graph_kinds(model, shapes)
    height = int(shapes.get(model.graph.input[0].name, [0, 0, 0])[2])
    scales = graph_scales(model, shapes, height)
    out = summarise(events, runs, kinds, scales, height)
    out["threads"] = threads
    out["macs_by_model"] = macs_by_prefix(model, model_of, shapes)
    out["macs_by_kind"] = macs_by_prefix(model, lambda name: kinds.get(name, "non-conv"), shapes)
    out["macs_by_scale"] = macs_by_prefix(model, lambda name: scales.get(name, "other"), shapes)
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
    return "\n".join(lines + kinds_markdown(profiles))


def kinds_markdown(profiles: dict[str, dict]) -> list[str]:
    """ms / frame by layer kind and by resolution, one column per profiled file (where an int8 kernel
    loses to float; where a pruned file's time stays)."""
    return (_grouped(profiles, "kind", "layer kind", "By layer kind")
            + _grouped(profiles, "scale", "resolution", "By resolution (a node's output against the input; "
                       "the MACs' share in brackets after the GMAC/s)", share=True))


def _grouped(profiles: dict[str, dict], key: str, label: str, title: str, share: bool = False) -> list[str]:
    names = [n for n, p in profiles.items() if p.get(f"by_{key}_ms")]
    if not names:
        return []
    groups = sorted({k for n in names for k in profiles[n][f"by_{key}_ms"]},
                    key=lambda k: -max(profiles[n][f"by_{key}_ms"].get(k, 0.0) for n in names))
    cols = [f"`{n}`" for n in names]
    out = [f"{title}: ms / frame (1 thread) and achieved GMAC/s in brackets, one column per file:", "",
           f"| {label} | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for k in groups:
        cells = []
        for n in names:
            p = profiles[n]
            ms, macs = p[f"by_{key}_ms"].get(k, 0.0), (p.get(f"macs_by_{key}") or {}).get(k)
            total = sum((p.get(f"macs_by_{key}") or {}).values())
            cell = f"{ms:.2f}" + (f" ({macs / ms / 1e6:.1f})" if macs and ms else "")
            if share and macs and total:
                cell += f" [{100 * macs / total:.0f} % of MACs]"
            cells.append(cell)
        out.append(f"| {k} | " + " | ".join(cells) + " |")
    return out + [""]

"""Conv / Gemm biases of a QDQ graph re-quantized to the scale the fused int8 kernels assume.

ONNX's QLinearConv takes an int32 bias at scale ``x_scale * w_scale`` (per output channel) and adds
it to the int32 accumulator as it is.  ONNX Runtime (1.23 here) fuses ``DQ(x), DQ(w), DQ(bias) ->
Conv -> Q`` into QLinearConv at ``ORT_ENABLE_EXTENDED`` and above while checking only that the
bias is int32, not its scale (microsoft/onnxruntime#24711, fixed by #28229 in later releases by
not fusing).  A file whose bias DQ carries another scale, as AIMET's export writes some of them,
then computes something else under the fast kernels than under ``ORT_ENABLE_BASIC`` or the
simulation (the demo's int8 YuNet: AP 0.91 simulated, 0.00 fused).

:func:`canonicalize` (called by the quantize stage on every file it exports) rewrites each such bias to ``round(b / (x_scale * w_scale))`` at that scale:
the same real-valued bias to within half a step of the finer grid (the bias grid becomes the
accumulator's, so the change is at most ``x_scale * w_scale / 2`` per channel), after which the
fused and the unfused graph agree to the int8 kernels' rounding.  :func:`mismatched` counts the
biases still off that scale: ``shared.evaluation.accuracy_mode`` measures a QDQ file with the fused
kernels only when it is 0, else unfused (``reference``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

FUSED_OPS = {"Conv": 2, "ConvTranspose": 2, "Gemm": 2}   # op -> index of the bias input
INT32 = np.iinfo(np.int32)


def _const(name: str, inits: dict, consts: dict):
    if name in inits:
        from onnx import numpy_helper
        return numpy_helper.to_array(inits[name])
    return consts.get(name)


def _load(model_or_path):
    """An ``onnx.ModelProto`` as given, or loaded (without external data) from a path."""
    import onnx
    return (onnx.load(str(model_or_path), load_external_data=False)
            if isinstance(model_or_path, (str, Path)) else model_or_path)


def _int32_bias_dqs(model):
    """(node, bias input index, bias DQ node, int32 q, const, producer) for every fusable node whose bias is
    a DequantizeLinear of an int32 constant; ``const(name)`` is an initializer's or Constant's value
    (None otherwise), ``producer`` maps a tensor name to the node that makes it."""
    from onnx import numpy_helper
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    consts = {n.output[0]: numpy_helper.to_array(a.t) for n in g.node if n.op_type == "Constant"
              for a in n.attribute if a.name == "value"}
    producer = {o: n for n in g.node for o in n.output}

    def const(name):
        return _const(name, inits, consts)
    for node in g.node:
        idx = FUSED_OPS.get(node.op_type)
        if idx is None or len(node.input) <= idx or not node.input[idx]:
            continue
        dq = producer.get(node.input[idx])
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        q = const(dq.input[0])
        if q is not None and q.dtype == np.int32:
            yield node, idx, dq, q, const, producer


def _off_scale(model):
    """(node, bias input index, q, zero point, have scale, wanted scale) for every int32 bias DQ of a
    fusable node whose scale is not ``x_scale * w_scale``; also returns how many int32 biases exist."""
    found, n_biases = [], 0
    for node, idx, dq_b, q, const, producer in _int32_bias_dqs(model):
        dq_x, dq_w = (producer.get(node.input[i]) for i in (0, 1))
        if not all(d is not None and d.op_type == "DequantizeLinear" for d in (dq_x, dq_w)):
            continue
        n_biases += 1
        b_scale = const(dq_b.input[1])
        b_zp = const(dq_b.input[2]) if len(dq_b.input) > 2 and dq_b.input[2] else 0
        x_scale, w_scale = (const(d.input[1]) for d in (dq_x, dq_w))
        if b_scale is None or x_scale is None or w_scale is None or np.size(x_scale) != 1:
            continue
        want = (np.float32(x_scale.reshape(-1)[0]) * np.asarray(w_scale, np.float32).reshape(-1)).astype(np.float32)
        want = np.broadcast_to(want, q.shape).astype(np.float32)
        have = np.broadcast_to(np.asarray(b_scale, np.float32), q.shape)
        if not (np.allclose(have, want, rtol=1e-6, atol=0) and not np.any(b_zp)):
            found.append((node, idx, q, b_zp, have, want))
    return found, n_biases


def int32_biases(model_or_path) -> dict[str, np.ndarray]:
    """Node name -> the real bias a fusable node's int32 bias DQ gives, ``(q - zero_point) * scale`` in
    float32 as DequantizeLinear computes it: what the file adds, for putting into its simulation
    (``stages.quantize.file_bias``)."""
    out = {}
    for node, _, dq, q, const, _ in _int32_bias_dqs(_load(model_or_path)):
        scale = const(dq.input[1])
        if scale is None:
            continue
        zp = const(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else 0
        out[node.name] = ((q.astype(np.float32) - np.asarray(zp, np.float32)) * np.asarray(scale, np.float32)
                          ).astype(np.float32)
    return out


def mismatched(model_or_path) -> int:
    """How many int32 biases of fusable nodes are not at ``x_scale * w_scale`` (0: fused kernels exact)."""
    return len(_off_scale(_load(model_or_path))[0])


def canonicalize(model) -> dict:
    """Rewrite ``model`` (an ``onnx.ModelProto``) in place; returns counts:
    ``{"biases": n, "rescaled": k, "max_bias_change": float}`` (the largest |b_new - b_old|)."""
    from onnx import helper, numpy_helper
    g = model.graph
    found, n_biases = _off_scale(model)
    stats = {"biases": n_biases, "rescaled": 0, "max_bias_change": 0.0}
    new_nodes = []
    for node, idx, q, b_zp, have, want in found:
        real = (q.astype(np.float64) - np.asarray(b_zp, np.float64)) * have.astype(np.float64)
        new_q = np.clip(np.round(real / want.astype(np.float64)), INT32.min, INT32.max).astype(np.int32)
        stats["max_bias_change"] = max(stats["max_bias_change"], float(np.abs(new_q * want.astype(np.float64) - real).max()))
        base = f"{node.input[idx]}_canonical_{stats['rescaled']}"
        g.initializer.extend([numpy_helper.from_array(new_q, base + "_q"),
                              numpy_helper.from_array(want.copy(), base + "_scale"),
                              numpy_helper.from_array(np.zeros_like(new_q), base + "_zp")])
        new_nodes.append(helper.make_node("DequantizeLinear", [base + "_q", base + "_scale", base + "_zp"], [base],
                                          name=base + "_dq", axis=0))
        node.input[idx] = base
        stats["rescaled"] += 1
    if new_nodes:
        # the new DQs go first (their inputs are initializers), then drop DQs nobody reads any more
        nodes = new_nodes + list(g.node)
        del g.node[:]
        g.node.extend(nodes)
        _drop_unused(g)
    return stats


def _drop_unused(g) -> None:
    outputs = {o.name for o in g.output}
    while True:
        used = {i for n in g.node for i in n.input} | outputs
        dead = [n for n in g.node if n.op_type == "DequantizeLinear" and not (set(n.output) & used)]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)


def canonicalize_file(path: Path) -> dict:
    """:func:`canonicalize` on an ONNX file, rewritten atomically."""
    import os

    import onnx
    path = Path(path)
    model = onnx.load(str(path))
    stats = canonicalize(model)
    if stats["rescaled"]:
        tmp = path.with_name(f".{path.name}.tmp")
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
    return stats

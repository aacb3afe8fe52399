"""What ONNX Runtime's fused kernels compute on an exported QDQ file, read from the file: the parameters
``ort_kernels`` gives each module of a simulation.

:func:`file_kernels` walks the graph as ONNX Runtime 1.23's QDQ selectors do (a Conv between
DequantizeLinear and QuantizeLinear becomes a QLinearConv, an Add of two DequantizeLinear outputs feeding
one QuantizeLinear a QLinearAdd, the rest stays float) and returns, per module (matched by the exporter's
scope names, ``file_bias.module_path``), the integers and scales each kernel needs.

Two kinds of file are read:

* the AIMET files the stage writes: int8 weights and int32 biases stored (``shared.qdq_bias``);
* NNCF's files: float weights behind a QuantizeLinear, float biases, no QuantizeLinear after a MaxPool.
  ONNX Runtime's graph optimisation turns them into the same integers: constant folding computes the
  weights' QuantizeLinear (``w / s`` in float32, half to even, plus the zero point, saturated);
  ``WeightBiasQuantization`` gives a Conv it fuses the int32 bias ``Round(b / (x_s * w_s))`` (onnxruntime
  ``core/optimizer/qdq_transformer/weight_bias_quantization.cc``), a Conv left in float keeps its float
  bias (measured on 1.23's optimised graph); QDQ propagation moves a DequantizeLinear past a MaxPool.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from stages.quantize.file_bias import module_path

SAME_BITS = {"QuantizeLinear", "DequantizeLinear", "Relu", "MaxPool", "Resize", "Reshape", "Transpose", "Identity",
             "Constant", "Concat", "Flatten", "Add", "Mul"}   # float Add / Mul: one IEEE op, alike in both
F32 = np.float32


class QdqGraph:
    """An ONNX file's nodes with its constants (initializers and Constant nodes), producers and consumers."""

    def __init__(self, path: Path):
        import onnx
        from onnx import numpy_helper
        m = onnx.load(str(path))
        self.nodes = list(m.graph.node)
        self.c = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
        self.c.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in self.nodes
                       if n.op_type == "Constant" and n.attribute})
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def qparams(self, node):
        """(scale float32, zero point int array, stored dtype) of a Q/DQ node."""
        s = np.asarray(self.c[node.input[1]], F32)
        z = self.c[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros(s.shape, np.uint8)
        return s, np.asarray(z), np.asarray(z).dtype

    def dq(self, name: str):
        """The DequantizeLinear giving ``name``, through a MaxPool (ONNX Runtime's QDQ propagation moves a
        per-tensor DequantizeLinear after it: NNCF leaves a MaxPool's output unquantized), else None."""
        n = self.producer.get(name)
        if n is not None and n.op_type == "MaxPool":
            n = self.producer.get(n.input[0])
            return n if n is not None and n.op_type == "DequantizeLinear" and self.qparams(n)[0].size == 1 else None
        return n if n is not None and n.op_type == "DequantizeLinear" else None

    def output_q(self, node):
        """The QuantizeLinear a node feeds alone (through a ReLU that ONNX Runtime drops: zero point at the
        type's minimum), else None."""
        nxt = self.consumers.get(node.output[0], [])
        if len(nxt) == 1 and nxt[0].op_type == "Relu":
            nxt = self.consumers.get(nxt[0].output[0], [])
            if len(nxt) == 1 and nxt[0].op_type == "QuantizeLinear":
                _, z, dt = self.qparams(nxt[0])
                return nxt[0] if int(z) == np.iinfo(dt).min else None
            return None
        return nxt[0] if len(nxt) == 1 and nxt[0].op_type == "QuantizeLinear" else None

    def stored(self, dq) -> np.ndarray:
        """The integers a DequantizeLinear of a constant reads: an initializer, or a QuantizeLinear of a float
        one as constant folding computes it."""
        name = dq.input[0]
        if name in self.c:
            return np.asarray(self.c[name])
        q = self.producer[name]
        s, z, dt = self.qparams(q)
        w = self.constant(q.input[0])
        shape = _channel_shape(q, s, w.ndim)
        info = np.iinfo(dt)
        return np.clip(np.rint(w / s.reshape(shape)) + z.astype(np.float32).reshape(shape), info.min, info.max).astype(dt)

    def dequantized(self, dq) -> np.ndarray:
        """What a DequantizeLinear of a constant gives, in float32 (per-channel on axis 0 or 1 of a weight)."""
        q = self.stored(dq)
        s, z, _ = self.qparams(dq)
        shape = _channel_shape(dq, s, q.ndim)
        return ((q.astype(F32) - z.astype(F32).reshape(shape)) * s.reshape(shape)).astype(F32)

    def constant(self, name: str) -> np.ndarray:
        """A constant input in float32: an initializer, through Identity copies (shared parameters) and a
        DequantizeLinear (quantized parameters)."""
        while name not in self.c and self.producer.get(name) is not None and self.producer[name].op_type == "Identity":
            name = self.producer[name].input[0]
        if name in self.c:
            return np.asarray(self.c[name], F32)
        return self.dequantized(self.producer[name])

    def bias(self, n, dqs, fused: bool) -> np.ndarray | None:
        """A Conv's / ConvTranspose's bias as ONNX Runtime adds it: for a QLinearConv (``fused``) the int32 on
        the ``x_s * w_s`` grid (float64), stored or made by ``WeightBiasQuantization`` from a float one
        (``Round(b / (x_s * w_s))``); for a kernel run in float the float32 value (a float bias stays float:
        measured, ONNX Runtime 1.23 quantizes only the biases of the Convs it fuses); None without a bias."""
        if len(n.input) < 3 or not n.input[2]:
            return None
        if len(dqs) > 2 and dqs[2] is not None:
            return self.stored(dqs[2]).astype(np.float64) if fused else self.dequantized(dqs[2])
        b = self.constant(n.input[2])
        if not fused:
            return b
        scale = (self.qparams(dqs[0])[0] * self.qparams(dqs[1])[0]).astype(F32)
        return np.rint((b / scale).astype(F32)).astype(np.float64)

    def fusable_bias(self, n, dqs) -> bool:
        """Whether a Conv's bias lets ONNX Runtime fuse it: none, stored as int32, or float with a per-tensor
        input scale and a weight scale per tensor or per output channel (axis 0)."""
        if len(n.input) < 3 or not n.input[2] or (len(dqs) > 2 and dqs[2] is not None):
            return True
        (xs, _, _), (ws, _, _) = self.qparams(dqs[0]), self.qparams(dqs[1])
        axis = next((a.i for a in dqs[1].attribute if a.name == "axis"), 1)
        return xs.size == 1 and (ws.size == 1 or (axis == 0 and ws.size == self.constant(n.input[2]).size))

    def source_module(self, dq) -> str | None:
        """The module whose output a DequantizeLinear's QuantizeLinear quantized."""
        qn = self.producer.get(dq.input[0])
        src = self.producer.get(qn.input[0]) if qn is not None and qn.op_type == "QuantizeLinear" else None
        return module_path(src.name) if src is not None else None


def _channel_shape(node, s: np.ndarray, ndim: int) -> list[int]:
    shape = [1] * ndim
    if s.size > 1:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape[axis if ndim > 1 else 0] = -1
    return shape


def file_kernels(path: Path) -> dict:
    """What ``ort_kernels.target_kernels`` needs from an exported QDQ file: {"conv", "conv_transpose",
    "float_conv", "batch_norm": {module: params}, "add": {(module a, module b): params, with "q_nodes": the
    QuantizeLinear nodes of its operands}, "sigmoid": count,
    "float_ops": Counter of the ops left to the simulation's float math}."""
    g = QdqGraph(Path(path))
    out = {"conv": {}, "conv_transpose": {}, "float_conv": {}, "batch_norm": {}, "add": {}, "sigmoid": 0,
           "float_ops": Counter()}
    for n in g.nodes:
        dqs = [g.dq(i) if i else None for i in n.input]
        q = g.output_q(n)
        found = None
        if n.op_type == "Conv" and len(dqs) >= 2 and all(dqs[:2]):
            if q is not None and g.fusable_bias(n, dqs):
                found = "conv", _qlinear_conv(g, n, dqs, q)
            else:    # feeding a float BatchNormalization, or a ReLU whose QuantizeLinear keeps negatives
                found = "float_conv", _float_conv(g, n, dqs)
        elif n.op_type == "ConvTranspose" and q is not None and len(dqs) >= 2 and all(dqs[:2]):
            found = "conv_transpose", _conv_transpose(g, n, dqs, q)
        elif n.op_type == "BatchNormalization" and q is not None:
            found = "batch_norm", _batch_norm(g, n, q)
        elif n.op_type == "Sigmoid":
            out["sigmoid"] += 1
            continue
        elif n.op_type == "Add" and q is not None and len(dqs) == 2 and all(dqs):
            srcs = tuple(g.source_module(d) for d in dqs)
            if None not in srcs:
                (sa, za, _), (sb, zb, _), (sc, zc, dt) = (g.qparams(x) for x in (*dqs, q))
                out["add"][srcs] = {"sa": F32(sa), "za": int(za), "sb": F32(sb), "zb": int(zb),
                                    "sc": F32(sc), "zc": int(zc), "dt": dt,
                                    "q_nodes": tuple(g.producer[d.input[0]].name for d in dqs)}
                continue
        if found is not None and found[1] is not None:
            out[found[0]][module_path(n.name)] = found[1]
        elif n.op_type not in SAME_BITS:
            out["float_ops"][n.op_type] += 1
    return out


def _qlinear_conv(g: QdqGraph, n, dqs, q) -> dict:
    (xs, _, _), (ws, wz, _), (ys, yz, dt) = g.qparams(dqs[0]), g.qparams(dqs[1]), g.qparams(q)
    wq = g.stored(dqs[1])
    bias_q = g.bias(n, dqs, fused=True)
    return {"w": wq.astype(np.float64) - wz.astype(np.float64).reshape(-1, 1, 1, 1), "xs": float(xs),
            "b": bias_q if bias_q is not None else np.zeros(wq.shape[0]),
            "mult": np.atleast_1d((xs * ws).astype(F32) / ys).astype(F32), "ys": ys, "yz": int(yz), "dt": dt}


def _conv_transpose(g: QdqGraph, n, dqs, q) -> dict | None:
    attrs = {a.name: list(a.ints) for a in n.attribute}
    if not (attrs.get("kernel_shape", [2, 2]) == [2, 2] and attrs.get("strides") == [2, 2]
            and not any(attrs.get("pads", [0])) and not any(attrs.get("output_padding", [0]))):
        return None
    w = g.dequantized(dqs[1])
    b = g.bias(n, dqs, fused=False)
    ys, yz, dt = g.qparams(q)
    return {"w": w, "b": b if b is not None else np.zeros(w.shape[1], F32), "xs": float(g.qparams(dqs[0])[0]),
            "ys": ys, "yz": int(yz), "dt": dt}


def _float_conv(g: QdqGraph, n, dqs) -> dict:
    return {"w": g.dequantized(dqs[1]), "b": g.bias(n, dqs, fused=False), "xs": float(g.qparams(dqs[0])[0])}


def _batch_norm(g: QdqGraph, n, q) -> dict:
    scale, bias, mean, var = (g.constant(i) for i in n.input[1:5])
    eps = F32(next((a.f for a in n.attribute if a.name == "epsilon"), 1e-5))
    ns = ((F32(1) / np.sqrt((var + eps).astype(F32))).astype(F32) * scale).astype(F32)
    ys, yz, dt = g.qparams(q)
    return {"ns": ns, "nb": (bias - (mean * ns).astype(F32)).astype(F32), "ys": ys, "yz": int(yz), "dt": dt}

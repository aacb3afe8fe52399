"""Cost of an ONNX artifact read from the graph: parameters, MACs, bytes (no torch, no run).

* parameters: elements of the initializers that are weights, i.e. not the scale / zero
  point of Quantize/DequantizeLinear (or QLinear*) nodes, not int64 (shapes, axes) and
  not the shape-like inputs of Reshape / Resize / Slice / Pad / Clip ...;
* MACs, the convention of ``shared.metrics.cost`` (thop / ptflops) on the inferred shapes
  (``onnx.shape_inference``; symbolic dims count as 1):
    Conv / ConvInteger / QLinearConv:  out_elements * (C_in / groups) * kH * kW
    ConvTranspose:                      in_elements * (C_out / groups) * kH * kW
    Gemm / MatMul (+Integer/QLinear):   out_elements * K
  biases, BN, activations, pooling, resize and adds are not counted;
* weight_bytes: the bytes those parameter initializers take as stored (int8 weights count 1 B,
  int32 biases 4 B, FP32 4 B): the model size the study compares, without the graph and
  without the QDQ scales / zero points (which ``bytes`` includes);
* bytes: the file size (plus external data files next to it).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

# inputs (by index) that hold shapes / ranges / quantization params rather than weights
NON_WEIGHT_INPUTS = {
    "QuantizeLinear": {1, 2}, "DequantizeLinear": {1, 2}, "DynamicQuantizeLinear": set(),
    "QLinearConv": {1, 2, 4, 5, 6, 7}, "QLinearMatMul": {1, 2, 4, 5, 6, 7},
    "QLinearAdd": {1, 2, 4, 5, 6, 7}, "ConvInteger": {2, 3}, "MatMulInteger": {2, 3},
    "Reshape": {1}, "Resize": {1, 2, 3}, "Upsample": {1}, "Slice": {1, 2, 3, 4}, "Pad": {1, 2, 3},
    "Expand": {1}, "Tile": {1}, "Unsqueeze": {1}, "Squeeze": {1}, "Clip": {1, 2},
    "ConstantOfShape": {0}, "Range": {0, 1, 2}, "TopK": {1}, "ReduceMean": {1}, "ReduceSum": {1},
    "Split": {1}, "Gather": {1}, "NonMaxSuppression": {2, 3, 4},
}
CONV_OPS = {"Conv", "ConvInteger", "QLinearConv"}
MATMUL_OPS = {"Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"}


def _numel(dims) -> int:
    return int(math.prod(int(d) for d in dims)) if dims is not None else 0


def weight_initializers(model) -> list:
    """The initializers that are weights (see the module docstring)."""
    from onnx import TensorProto
    skip = set()
    for n in model.graph.node:
        for i in NON_WEIGHT_INPUTS.get(n.op_type, ()):
            if i < len(n.input):
                skip.add(n.input[i])
    return [t for t in model.graph.initializer
            if t.name not in skip and t.data_type not in (TensorProto.INT64, TensorProto.BOOL, TensorProto.STRING)]


def count_params(model) -> int:
    return sum(_numel(t.dims) for t in weight_initializers(model))


def weight_bytes(model) -> int:
    """Bytes of the weight initializers at their stored dtype."""
    from onnx import helper
    return sum(_numel(t.dims) * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
               for t in weight_initializers(model))


def tensor_shapes(model) -> dict[str, list[int]]:
    """Every tensor's inferred shape (initializers included; symbolic dims as 1)."""
    import onnx
    from onnx import shape_inference
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in list(m.graph.input) + list(m.graph.output):
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.dim_value = 1
    try:
        m = shape_inference.infer_shapes(m, strict_mode=False)
    except Exception:  # noqa: BLE001 - a graph ORT runs but onnx cannot infer: count what we can
        pass
    shapes = {}
    for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = [d.dim_value for d in dims]
    for t in m.graph.initializer:
        shapes[t.name] = list(t.dims)
    return shapes


def conv_weight(node, shapes: dict[str, list[int]]) -> list[int] | None:
    """The weight shape of a Conv / QLinearConv / ConvTranspose node (through its DequantizeLinear)."""
    w_idx = 3 if node.op_type == "QLinearConv" else 1
    return shapes.get(node.input[w_idx]) if len(node.input) > w_idx else None


def node_attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return a.i if a.type == a.INT else list(a.ints)
    return default


def node_macs(node, shapes: dict[str, list[int]]) -> int:
    op = node.op_type
    if op in CONV_OPS or op == "ConvTranspose":
        w = conv_weight(node, shapes)
        x = shapes.get(node.input[0])
        y = shapes.get(node.output[0])
        if not w:
            return 0
        k = _numel(w[2:])
        if op == "ConvTranspose":
            return _numel(x) * w[1] * k if x else 0          # w: [C_in, C_out/groups, kH, kW]
        return _numel(y) * w[1] * k if y else 0               # w: [C_out, C_in/groups, kH, kW]
    if op in MATMUL_OPS:
        a_idx, b_idx = (0, 3) if op == "QLinearMatMul" else (0, 1)
        a, y = shapes.get(node.input[a_idx]), shapes.get(node.output[0])
        if not a or not y:
            return 0
        k = a[-2] if (op == "Gemm" and node_attr(node, "transA", 0)) else a[-1]
        return _numel(y) * k
    return 0


def count_macs(model) -> int:
    shapes = tensor_shapes(model)
    return int(sum(node_macs(n, shapes) for n in model.graph.node))


def macs_by_prefix(model, group, shapes: dict[str, list[int]] | None = None) -> dict[str, int]:
    """MACs summed by ``group(node name)`` (e.g. the model a pipeline node belongs to); ``shapes``:
    :func:`tensor_shapes` of ``model`` when the caller has them already."""
    shapes, out = shapes or tensor_shapes(model), {}
    for n in model.graph.node:
        m = node_macs(n, shapes)
        if m:
            out[group(n.name)] = out.get(group(n.name), 0) + m
    return out


def file_bytes(path: Path) -> int:
    """The ONNX file plus any external-data files it references."""
    import onnx
    from onnx.external_data_helper import uses_external_data
    path = Path(path)
    total = os.path.getsize(path)
    model = onnx.load(str(path), load_external_data=False)
    seen = set()
    for t in model.graph.initializer:
        if uses_external_data(t):
            loc = next((e.value for e in t.external_data if e.key == "location"), None)
            if loc and loc not in seen and (path.parent / loc).exists():
                seen.add(loc)
                total += os.path.getsize(path.parent / loc)
    return int(total)


def cost(path: Path) -> dict:
    """{params, macs, weight_bytes, bytes, input_shape} of one ONNX file."""
    import onnx
    model = onnx.load(str(path))
    inp = model.graph.input[0].type.tensor_type.shape.dim if model.graph.input else []
    return {"params": count_params(model), "macs": count_macs(model), "weight_bytes": weight_bytes(model),
            "bytes": file_bytes(path),
            "input_shape": [d.dim_value if d.HasField("dim_value") else 1 for d in inp]}

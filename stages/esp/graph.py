"""ONNX graph checks for ESP-DL: supported ops, cutting before an unsupported node, tensor shapes.

ESP-DL runs the ops esp-ppq's ESP-DL quantizer knows (``EspdlQuantizer.quant_operation_types``,
read from the installed esp-ppq).  :func:`check_ops` names the first op that is not among
them, with its node, and how to cut the graph before it (``esp.cut.<model>: <node>``);
:func:`cut_before` does the cut with ``onnx.utils.Extractor``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

# ops the ONNX exporter leaves that esp-ppq folds away or ESP-DL runs without quantizing
PASSIVE_OPS = {"Constant", "Shape", "Cast", "Identity"}


class UnsupportedOp(RuntimeError):
    """An op ESP-DL cannot run; the message names the op, the node and the config fix."""


def espdl_ops() -> set[str]:
    from esp_ppq.quantization.quantizer.EspdlQuantizer import EspdlQuantizer
    return set(EspdlQuantizer.quant_operation_types.fget(None)) | {"ConvTranspose"}


def check_ops(path: Path, model: str, supported: set[str] | None = None) -> list[str]:
    """Op types of the graph; raises UnsupportedOp at the first node ESP-DL lacks."""
    supported = espdl_ops() if supported is None else supported
    g = onnx.load(str(path)).graph
    for node in g.node:
        if node.op_type not in supported and node.op_type not in PASSIVE_OPS:
            raise UnsupportedOp(
                f"{path}: op '{node.op_type}' (node '{node.name}') is not supported by ESP-DL for {model}; "
                f"set `esp.cut.{model}: \"{node.name}\"` in the config to cut the graph before it "
                f"(that part then runs off the chip)")
    return sorted({n.op_type for n in g.node})


def cut_before(src: Path, dst: Path, node_name: str) -> list[str]:
    """Write the part of ``src`` upstream of ``node_name``; its new outputs are that node's inputs."""
    m = onnx.load(str(src))
    g = m.graph
    node = next((n for n in g.node if n.name == node_name), None)
    if node is None:
        names = ", ".join(n.name for n in g.node[:8])
        raise KeyError(f"{src}: esp.cut: no node named '{node_name}' (first nodes: {names}, ...)")
    inits = {t.name for t in g.initializer}
    outputs = [i for i in node.input if i and i not in inits]
    inputs = [i.name for i in g.input if i.name not in inits]
    onnx.utils.extract_model(str(src), str(dst), inputs, outputs, check_model=True)
    return outputs


def tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Static shapes of every value (inputs, intermediates, outputs, initializers) of an ONNX file."""
    m = shape_inference.infer_shapes(onnx.load(str(path)))
    shapes = {}
    for vi in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output):
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if dims and all(d > 0 for d in dims):
            shapes[vi.name] = tuple(dims)
    for t in m.graph.initializer:
        shapes[t.name] = tuple(t.dims)
    return shapes


def graph_lists(path: Path) -> tuple[list[tuple[str, list[str], list[str]]], set[str], list[str], list[str]]:
    """(nodes as (name, inputs, outputs) in topological order, initializer names, graph inputs, graph outputs)."""
    g = onnx.load(str(path)).graph
    inits = {t.name for t in g.initializer}
    nodes = [(n.name or f"{n.op_type}_{i}", [x for x in n.input if x], list(n.output)) for i, n in enumerate(g.node)]
    return nodes, inits, [i.name for i in g.input if i.name not in inits], [o.name for o in g.output]


def numel(shape) -> int:
    return int(np.prod(shape)) if len(shape) else 1

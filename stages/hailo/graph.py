"""ONNX side of the Hailo flow: checks, roles, and where to cut each graph (start/end nodes).

Hailo's parser takes a graph up to *end nodes*; what follows them (for YuNet: the
Transpose -> Reshape -> Sigmoid that turn each head conv into OpenCV's [N, H*W, C] layout)
runs on the host, as Hailo does for its own face detectors.  :func:`end_nodes` walks back
from every graph output through such layout/activation ops to the compute node that feeds
them (the cls/obj/bbox/kps head convs) and returns those node names, keyed by output.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import onnx

from shared.errors import ExpectedError

# Ops that only re-lay or squash a head's output: cut here, redo on the host (post.py).
POST_OPS = {"Sigmoid", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Softmax"}
# Ops our three nets use that the Hailo-8 ONNX parser supports (Dataflow Compiler user guide, supported layers).
HAILO_OPS = {"Conv", "ConvTranspose", "Relu", "LeakyRelu", "PRelu", "Add", "Sub", "Mul", "MaxPool", "AveragePool",
             "GlobalAveragePool", "Resize", "Upsample", "Concat", "BatchNormalization", "Sigmoid", "Clip",
             "Constant", "Pad", "Slice", "Split"}
ROLES = ("enhancer", "denoiser", "yunet")


class GraphError(ExpectedError, ValueError):
    pass


@dataclass
class ModelInfo:
    name: str                       # hailo model (network) name
    role: str                       # enhancer | denoiser | yunet
    path: Path
    input_name: str
    input_shape: list[int]          # NCHW, static
    outputs: list[str]
    end_nodes: dict[str, str]       # graph output -> node the Hailo graph ends at
    cut_ops: dict[str, list[str]]   # graph output -> op types left to the host (in graph order)
    ops: dict[str, int] = field(default_factory=dict)
    unsupported_ops: list[str] = field(default_factory=list)   # inside the kept part
    opset: int = 0

    def summary(self) -> dict:
        return {"file": str(self.path), "role": self.role, "input": self.input_name, "input_shape": self.input_shape,
                "opset": self.opset, "nodes": sum(self.ops.values()), "ops": self.ops,
                "end_nodes": self.end_nodes, "host_post_ops": self.cut_ops, "unsupported_ops": self.unsupported_ops}


def role_of(path: str | Path) -> str:
    stem = Path(path).stem.lower()
    for role in ROLES:
        if stem.startswith(role):
            return role
    if stem.startswith("detector"):
        return "yunet"
    raise GraphError(f"{path}: cannot tell the model's role from its name (want a name starting with "
                     f"{', '.join(ROLES)})")


def end_nodes(model: onnx.ModelProto) -> tuple[dict[str, str], dict[str, list[str]]]:
    """{output: end node name}, {output: host-side op types} for every graph output."""
    producer = {o: n for n in model.graph.node for o in n.output}
    ends, cut = {}, {}
    for out in model.graph.output:
        tensor, ops = out.name, []
        while True:
            node = producer.get(tensor)
            if node is None:
                raise GraphError(f"output {out.name}: reaches the graph input through {ops} without a compute node")
            if node.op_type not in POST_OPS:
                break
            ops.insert(0, node.op_type)
            tensor = node.input[0]          # every POST_OP carries its data in input 0
        if not node.name:
            raise GraphError(f"output {out.name}: the node producing it has no name (Hailo needs node names)")
        ends[out.name], cut[out.name] = node.name, ops
    return ends, cut


def inspect(path: str | Path, name: str | None = None) -> ModelInfo:
    """Load, check and describe one ONNX file; GraphError naming the file on anything Hailo cannot take."""
    path = Path(path)
    if not path.exists():
        raise GraphError(f"{path}: missing (is the upstream stage done?)")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001 - onnx raises several types
        raise GraphError(f"{path}: not a valid ONNX model ({type(e).__name__}: {e})") from None
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise GraphError(f"{path}: needs exactly one input, has {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(shape) != 4 or None in shape or shape[0] != 1:
        raise GraphError(f"{path}: input {inputs[0].name} must be static [1, C, H, W], got {shape}")
    ends, cut = end_nodes(model)
    cut_nodes = _post_nodes(model, ends)
    ops: dict[str, int] = {}
    for n in model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    kept = {n.op_type for n in model.graph.node if n.name not in cut_nodes}
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return ModelInfo(name or path.stem, role_of(path), path, inputs[0].name, shape, [o.name for o in model.graph.output],
                     ends, cut, ops, sorted(kept - HAILO_OPS), opset)


def _post_nodes(model: onnx.ModelProto, ends: dict[str, str]) -> set[str]:
    """Names of nodes after the end nodes (the host part), plus Constants feeding only them."""
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    by_name = {n.name: n for n in model.graph.node}
    seen: set[str] = set()
    stack = [t for e in set(ends.values()) for t in by_name[e].output]
    while stack:
        for n in consumers.get(stack.pop(), []):
            if n.name not in seen:
                seen.add(n.name)
                stack += list(n.output)
    post_inputs = {i for n in model.graph.node if n.name in seen for i in n.input}
    seen |= {n.name for n in model.graph.node if n.op_type == "Constant" and set(n.output) <= post_inputs}
    return seen

"""Bytes of a quantized esp-ppq graph: weights and the peak live activation set (memory.peak_live_bytes).

Each tensor's bit width comes from the quantization config the graph carries (int8, int16
or float for a layer left unquantized); the element counts come from one forward pass of
esp-ppq's executor that returns every intermediate tensor.  Storage: <= 8 bits -> 1 byte,
<= 16 -> 2, wider (e.g. the 20-bit int8 conv bias, kept as int32) -> 4.
"""
from __future__ import annotations

import torch

from stages.esp.memory import peak_live_bytes
from stages.esp.quantize import op_bits


def bytes_per(bits: int) -> int:
    return 1 if bits <= 8 else 2 if bits <= 16 else 4


def _cfg_bits(cfg) -> int:
    while getattr(cfg, "dominated_by", cfg) is not cfg:
        cfg = cfg.dominated_by
    return 32 if cfg.state.name in ("FP32", "SOI") else int(cfg.num_of_bits)


def graph_footprint(graph, sample: torch.Tensor) -> dict:
    """{weights_bytes, peak_activation_bytes, peak_at, n_params, bits_hist} for a quantized graph."""
    from esp_ppq.executor import TorchExecutor
    from esp_ppq.IR import QuantableOperation
    ops = graph.topological_sort()
    bits: dict[str, int] = {}
    for op in ops:
        if isinstance(op, QuantableOperation):
            for v, c in zip(op.inputs, op.config.input_quantization_config):
                bits.setdefault(v.name, _cfg_bits(c))
            for v, c in zip(op.outputs, op.config.output_quantization_config):
                bits[v.name] = _cfg_bits(c)
    acts = [n for op in ops for n in (v.name for v in op.outputs)]
    values = TorchExecutor(graph=graph, device="cpu").forward(inputs=sample, output_names=acts)
    numel = {n: int(v.numel()) for n, v in zip(acts, values)}
    for name in graph.inputs:
        numel[name] = int(sample.numel())
    nbytes = {n: k * bytes_per(bits.get(n, 32)) for n, k in numel.items()}
    weights = n_params = 0
    for v in graph.variables.values():
        if v.is_parameter and v.value is not None and hasattr(v.value, "numel"):
            weights += int(v.value.numel()) * bytes_per(bits.get(v.name, 32))
            n_params += int(v.value.numel())
    nodes = [(op.name, [v.name for v in op.inputs if not v.is_parameter], [v.name for v in op.outputs]) for op in ops]
    peak, where = peak_live_bytes(nodes, nbytes, list(graph.inputs), list(graph.outputs))
    hist: dict[str, int] = {}
    for op in ops:
        if isinstance(op, QuantableOperation) and op.is_computing_op:
            hist[str(op_bits(op))] = hist.get(str(op_bits(op)), 0) + 1
    return {"weights_bytes": weights, "peak_activation_bytes": peak, "peak_at": where, "n_params": n_params,
            "computing_layers_by_bits": hist}

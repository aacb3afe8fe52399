"""ONNX export (legacy TorchScript exporter, static shapes) and ONNX Runtime parity check.

``export_onnx(model, path, input_shape, output_names, opset=13)`` writes a single-file
ONNX model with one input named ``input`` (the name cv2.FaceDetectorYN expects) and
the given output names, replaces the exporter's Identity-of-initializer nodes by plain
initializers, runs ``onnx.checker`` on it and returns the path.
``check_parity(model, path, x)`` returns the max abs difference between the torch
outputs and ONNX Runtime (CPU) outputs for the same input.
"""
from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np
import torch


def _as_tuple(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, input_shape: Sequence[int],
                output_names: Sequence[str], opset: int = 13, input_name: str = "input") -> str:
    """Export ``model`` (in eval mode) for a fixed ``input_shape`` (N, C, H, W)."""
    import onnx

    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    was_training = model.training
    model.eval()
    x = torch.zeros(*input_shape, dtype=torch.float32)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # legacy-exporter deprecation notice
            torch.onnx.export(model, (x,), path, input_names=[input_name],
                              output_names=list(output_names), opset_version=opset,
                              do_constant_folding=True, dynamo=False)
    finally:
        model.train(was_training)
    model_proto = onnx.load(path)
    if _inline_identity_initializers(model_proto):
        onnx.save(model_proto, path)
    onnx.checker.check_model(onnx.load(path))
    return path


def _inline_identity_initializers(model_proto) -> int:
    """The exporter de-duplicates equal weights (e.g. the constant 0.02 biases of an untrained
    YuNet) into Identity nodes; give each consumer its own copy of the initializer instead, so
    the graph holds only compute ops and every layer owns its weights (Hailo / ESP-DL friendly).
    Returns the number of Identity nodes removed."""
    graph = model_proto.graph
    inits = {t.name: t for t in graph.initializer}
    removed = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            copy = graph.initializer.add()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            removed.append(node)
    for node in removed:
        graph.node.remove(node)
    return len(removed)


def run_onnx(path: str | os.PathLike, x: np.ndarray | torch.Tensor) -> list[np.ndarray]:
    """Run an ONNX model on CPU with ONNX Runtime; returns its outputs in graph order."""
    import onnxruntime as ort

    sess = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})


def check_parity(model: torch.nn.Module, path: str | os.PathLike, x: torch.Tensor) -> float:
    """Max abs difference over all outputs between ``model(x)`` (eval) and ONNX Runtime."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        ref = [t.numpy() for t in _as_tuple(model(x))]
    model.train(was_training)
    got = run_onnx(path, x)
    if len(got) != len(ref):
        raise ValueError(f"torch gives {len(ref)} outputs, ONNX {len(got)}")
    return max(float(np.max(np.abs(r - g))) if r.size else 0.0 for r, g in zip(ref, got))

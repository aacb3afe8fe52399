"""A simulation measured with the biases its exported file adds, so the two compute the same thing.

The int8 kernels add a Conv's bias as an int32 on the accumulator's grid, ``x_scale * w_scale`` per
output channel (``shared.qdq_bias``: the quantize stage rewrites every file's biases to that grid).
AIMET's simulation (and NNCF's) keeps the float bias. The rounding is small against the bias, but
not against an 8-bit output step for a few values per layer (up to a hundredth of a step on the
demo detector's first conv), and an int8 chain spreads such 1-step differences: on the demo run the
detector's head outputs differed in 70 % of their values between the AIMET sim and its file, and AP
by up to 2 points on 96 images. With the file's biases in the sim its outputs equal the file's
(docs/decisions.md, session 12).

:func:`file_biases` puts them in for a ``with`` block and restores the float ones after, so QAT still
trains float biases. Nodes are matched to modules by ``torch.onnx.export``'s scope names
(:func:`module_path`).
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch

from shared.qdq_bias import int32_biases

log = logging.getLogger("stages.quantize")


def module_path(node_name: str) -> str:
    """The module a node of ``torch.onnx.export`` (TorchScript) belongs to:
    ``/enhancer/encoders.0/encoders.0.0/conv1/conv1.0/Conv`` -> ``enhancer.encoders.0.0.conv1.0``
    (a scope that extends the one before it, ``encoders.0`` -> ``encoders.0.0``, replaces it)."""
    parts: list[str] = []
    for seg in node_name.strip("/").split("/")[:-1]:
        if parts and seg.startswith(parts[-1] + "."):
            parts[-1] = seg
        else:
            parts.append(seg)
    return ".".join(parts)


@contextlib.contextmanager
def file_biases(module: torch.nn.Module, onnx_path: Path):
    """Within the block, every bias of ``module`` that ``onnx_path`` adds as int32 holds the file's
    value; yields ``{"biases": in the file, "matched": put into the module}``."""
    grid = int32_biases(onnx_path)
    mods = dict(module.named_modules())
    saved = []
    try:
        with torch.no_grad():
            for node, value in grid.items():
                bias = getattr(mods.get(module_path(node)), "bias", None)
                if not isinstance(bias, torch.Tensor) or bias.numel() != value.size:
                    continue
                saved.append((bias, bias.detach().clone()))
                bias.copy_(torch.from_numpy(value).reshape(bias.shape).to(bias.dtype))
        if len(saved) < len(grid):
            log.warning("%s: %d of %d int32 biases matched a module of the simulation; the others stay float",
                        Path(onnx_path).name, len(saved), len(grid))
        yield {"biases": len(grid), "matched": len(saved)}
    finally:
        with torch.no_grad():
            for bias, old in saved:
                bias.copy_(old)

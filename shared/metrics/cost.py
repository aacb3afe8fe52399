"""Model cost: parameter count, MACs (forward hooks) and on-disk artifact size.

``count_macs(model, input_shape)`` runs one forward pass on zeros and sums, over every
``nn.Conv2d``, ``nn.ConvTranspose2d`` and ``nn.Linear`` call:

* Conv2d:          out_elements * (C_in / groups) * kH * kW     (depthwise: kH * kW per output)
* ConvTranspose2d: in_elements * (C_out / groups) * kH * kW     (every input pixel is scattered
                                                                 through a kH x kW x C_out/groups kernel)
* Linear:          out_elements * in_features

Biases, BN, activations, pooling, resize and adds are not counted (the usual convention of
thop/ptflops for "MACs").  The total is for the whole input batch; use batch 1 for per-image
figures.  A module called twice (shared weights) is counted twice.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn as nn


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (BN affine included, buffers such as running stats excluded)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


def _layer_macs(m: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(m, nn.Conv2d):
        kh, kw = m.kernel_size
        return out.numel() * (m.in_channels // m.groups) * kh * kw
    if isinstance(m, nn.ConvTranspose2d):
        kh, kw = m.kernel_size
        return inp.numel() * (m.out_channels // m.groups) * kh * kw
    if isinstance(m, nn.Linear):
        return out.numel() * m.in_features
    return 0


def count_macs(model: nn.Module, input_shape: Sequence[int] | None = None,
               x: torch.Tensor | None = None, per_layer: bool = False):
    """MACs of one forward pass on ``torch.zeros(input_shape)`` (or on ``x``).

    Returns the total, or (total, {layer name: macs}) with ``per_layer=True``.
    """
    if x is None:
        if input_shape is None:
            raise ValueError("give input_shape or x")
        p = next(model.parameters(), None)
        x = torch.zeros(*input_shape, device=p.device if p is not None else "cpu")
    names = {m: n for n, m in model.named_modules()}
    table: dict[str, int] = {}
    hooks = []

    def hook(m, inputs, output):
        name = names.get(m, type(m).__name__)
        table[name] = table.get(name, 0) + _layer_macs(m, inputs[0], output)

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            hooks.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    total = int(sum(table.values()))
    return (total, table) if per_layer else total


def artifact_bytes(path: str | os.PathLike) -> int:
    """Size on disk of a file, or the total of the files under a directory."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return int(sum(os.path.getsize(os.path.join(r, f))
                       for r, _, files in os.walk(path) for f in files))
    return int(os.path.getsize(path))

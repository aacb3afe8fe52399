"""Structured channel pruning with torch-pruning (DependencyGraph + global ranking), iterative.

``prune_iterative(model, example, ratio, steps, importance, ignored, finetune)`` removes
channels for real (the layers get narrower: fewer parameters and MACs, same output shapes),
in ``steps`` equal steps towards ``ratio`` (torch-pruning's linear schedule), calling
``finetune(step)`` after each.  ``model`` may be one net or the whole ``Pipeline``: the
dependency graph follows the chain enhancer -> denoiser -> detector, so joint (JMMC)
pruning ranks every prunable group of the three models together.

Importance: ``l1`` / ``l2`` = ``GroupMagnitudeImportance(p=1|2)``, ``fpgm`` = torch-pruning's
``FPGMImportance`` (filter pruning via geometric median, He et al. CVPR 2019).
"""
from __future__ import annotations

import logging
import time
from typing import Callable

import torch
import torch.nn as nn
import torch_pruning as tp

from shared.metrics.cost import count_macs, count_params


def make_importance(name: str):
    if name == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1)
    if name == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if name == "fpgm":
        return tp.importance.FPGMImportance(p=2)
    raise ValueError(f"prune.importance: unknown importance {name!r} (l1, l2, fpgm)")


def _convs(m: nn.Module) -> list[nn.Module]:
    return [c for c in m.modules() if isinstance(c, (nn.Conv2d, nn.ConvTranspose2d))]


def ignored_layers(model: nn.Module, kind: str, keep_first_last: bool = True,
                   keep_detector_head: bool = True) -> list[nn.Module]:
    """Layers whose output channels are kept: per model the first and last convolution
    (the 3-channel image in and out, the detector's stem) and YuNet's head (its output
    channels are the 12 outputs' layout).  kind: restoration | detector | pipeline."""
    if kind == "pipeline":
        parts = [("restoration", model.enhancer), ("restoration", model.denoiser), ("detector", model.detector)]
    elif kind in ("restoration", "detector"):
        parts = [(kind, model)]
    else:
        raise ValueError(f"ignored_layers: kind must be restoration, detector or pipeline, got {kind!r}")
    keep: list[nn.Module] = []
    for part_kind, m in parts:
        convs = _convs(m)
        if keep_first_last and convs:
            keep.append(convs[0])
            if part_kind == "restoration":
                keep.append(convs[-1])
        if part_kind == "detector":
            # the head's predictors must keep their channels (the output layout) whatever the flags
            keep.append(m.bbox_head if keep_detector_head else _head_predictors(m))
    return keep


def _head_predictors(det: nn.Module) -> nn.ModuleList:
    h = det.bbox_head
    return nn.ModuleList([h.multi_level_cls, h.multi_level_bbox, h.multi_level_obj, h.multi_level_kps])


def channel_widths(model: nn.Module) -> dict[str, int]:
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))}


def prune_iterative(model: nn.Module, example: torch.Tensor, ratio: float, steps: int, importance: str,
                    ignored: list[nn.Module], finetune: Callable[[int], object] | None,
                    log: logging.Logger, name: str, max_layer_ratio: float = 0.9) -> list[dict]:
    """Prune ``model`` in place; returns per-step cost rows (params, MACs, seconds)."""
    model.eval()
    p0, m0 = count_params(model), count_macs(model, x=example)
    pruner = tp.pruner.BasePruner(model, example, importance=make_importance(importance), global_pruning=True,
                                  pruning_ratio=ratio, max_pruning_ratio=max_layer_ratio,
                                  iterative_steps=steps, ignored_layers=ignored)
    history = [{"step": 0, "params": p0, "macs": m0}]
    for step in range(1, steps + 1):
        t0 = time.time()
        model.eval()
        pruner.step()
        p, m = count_params(model), count_macs(model, x=example)
        log.info("%s: step %d/%d, params %d -> %d (%.1f %%), MACs %.2fM (%.1f %% of the original)",
                 name, step, steps, p0, p, 100 * p / p0, m / 1e6, 100 * m / m0)
        if finetune is not None:
            finetune(step)
        history.append({"step": step, "params": p, "macs": m, "seconds": round(time.time() - t0, 2)})
    model.eval()
    return history


"""Structured channel pruning with torch-pruning (DependencyGraph + global ranking), iterative.

``prune_iterative(model, example, ratio, steps, importance, ignored, finetune)`` removes
channels for real (the layers get narrower: fewer parameters and MACs, same output shapes),
in ``steps`` equal steps towards ``ratio`` (torch-pruning's linear schedule), calling
``finetune(step)`` after each.  ``model`` may be one net or the whole ``Pipeline``: the
dependency graph follows the chain enhancer -> denoiser -> detector, so joint (JMMC)
pruning ranks every prunable group of the three models together.

Importance: ``l1`` / ``l2`` = ``GroupMagnitudeImportance(p=1|2)``, ``fpgm`` = torch-pruning's
``FPGMImportance`` (filter pruning via geometric median, He et al. CVPR 2019), ``taylor`` =
``TaylorImportance`` (torch-pruning's ``GroupTaylorImportance``, first-order Taylor |w * dL/dw|,
Molchanov et al. CVPR 2019): it reads the gradients, so ``prune_iterative`` calls ``grads()``
(a ``loss.backward()`` on training batches) before every ``pruner.step()``.

``round_to=k`` (torch-pruning's ``round_to``): a layer that is pruned keeps a multiple of ``k``
channels (what vector units and the Hailo-8 / ESP32-S3 kernels process at once), at least ``k``.
``RoundingPruner`` rounds the kept width to the *nearest* multiple; torch-pruning 1.6 floors it,
which front-loads the schedule: on the smoke chain (l2, ratio 0.2 in 2 steps) flooring kept 0.83
of the channels after step 1 and removed nothing at step 2, where the unrounded schedule keeps
0.92 then 0.83 and the nearest multiple 0.94 then 0.85.  The price is a slightly smaller final cut
(ratio 0.5 in 5 steps: 0.58 of the channels kept against 0.55 unrounded); MACs are measured and
reported.  Layers of ``k`` channels or fewer are never pruned, so at the same ratio a rounded chain
keeps more of its full-resolution (expensive) layers: fewer MACs removed (smoke chain, l2, ratio
0.5 in 2 steps: -36 % MACs rounded to 8 against -57 % unrounded).

Taylor importance is often exactly 0 for many channels (no gradient on the batches seen: dead
ReLUs, images without faces), and torch-pruning's global threshold removes *every* channel at or
below it, so ties at 0 overshoot the step's ratio (smoke chain, ratio 0.2 in 2 steps: plain
``GroupTaylorImportance`` removed 26 % of the parameters at step 1 and nothing at step 2).
``TaylorImportance`` breaks the ties by magnitude (a 1e-6 share): 11 % then 24 %.

``sparsity_warmup``: sparsity learning before pruning (DepGraph, Fang et al. CVPR 2023): a few
epochs of fine-tuning with the group regulariser of torch-pruning's ``GroupNormPruner.regularize``
added to the gradients (``group_regularize``: the same rule, written again because 1.6's crashes
on ConvTranspose2d), which pushes whole channel groups towards zero so that removing them later
costs less.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

import torch
import torch.nn as nn
import torch_pruning as tp

from shared.metrics.cost import count_macs, count_params


IMPORTANCES = ("l1", "l2", "fpgm", "taylor")


class RoundingPruner(tp.pruner.BasePruner):
    """``BasePruner`` whose ``round_to`` keeps the nearest multiple (at least one multiple)."""

    def _round_to(self, n_pruned, current_channels, round_to):
        keep = max(round_to, int((current_channels - n_pruned) / round_to + 0.5) * round_to)
        return max(current_channels - keep, 0)


class TaylorImportance:
    """``GroupTaylorImportance`` + 1e-6 x (its max) x the group's normalised L2 magnitude: the same
    ranking wherever Taylor scores differ, magnitude order among channels Taylor scores alike (0)."""

    def __init__(self):
        self.taylor = tp.importance.GroupTaylorImportance()
        self.magnitude = tp.importance.GroupMagnitudeImportance(p=2)

    def __call__(self, group):
        t, m = self.taylor(group), self.magnitude(group)
        if t is None or m is None:
            return t if m is None else m
        scale = t.max() if t.max() > 0 else torch.ones_like(t.max())
        return t + 1e-6 * scale * m / m.max().clamp_min(1e-12)


def make_importance(name: str):
    if name == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1)
    if name == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if name == "fpgm":
        return tp.importance.FPGMImportance(p=2)
    if name == "taylor":
        return TaylorImportance()
    raise ValueError(f"prune.importance: unknown importance {name!r} ({', '.join(IMPORTANCES)})")


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
                    log: logging.Logger, name: str, max_layer_ratio: float = 0.9, round_to: int | None = None,
                    grads: Callable[[], object] | None = None) -> list[dict]:
    """Prune ``model`` in place; returns per-step cost rows (params, MACs, seconds).

    ``grads()`` fills the parameters' ``.grad`` (needed by ``taylor``); it runs before each step."""
    if importance == "taylor" and grads is None:
        raise ValueError("taylor importance needs grads(): a loss.backward() on a training batch before each step")
    model.eval()
    p0, m0 = count_params(model), count_macs(model, x=example)
    pruner = RoundingPruner(model, example, importance=make_importance(importance), global_pruning=True,
                            pruning_ratio=ratio, max_pruning_ratio=max_layer_ratio,
                            iterative_steps=steps, ignored_layers=ignored, round_to=round_to or None)
    history = [{"step": 0, "params": p0, "macs": m0}]
    for step in range(1, steps + 1):
        t0 = time.time()
        model.eval()
        if importance == "taylor":
            model.zero_grad(set_to_none=True)
            grads()
        pruner.step()
        model.zero_grad(set_to_none=True)
        p, m = count_params(model), count_macs(model, x=example)
        log.info("%s: step %d/%d, params %d -> %d (%.1f %%), MACs %.2fM (%.1f %% of the original)",
                 name, step, steps, p0, p, 100 * p / p0, m / 1e6, 100 * m / m0)
        if finetune is not None:
            finetune(step)
        history.append({"step": step, "params": p, "macs": m, "seconds": round(time.time() - t0, 2)})
    model.eval()
    return history


def sparsity_warmup(model: nn.Module, example: torch.Tensor, ignored: list[nn.Module], reg: float,
                    train: Callable[[Callable[[], object]], object], alpha: float = 16.0):
    """Sparsity learning before pruning: ``train(after_backward)`` runs the fine-tuning and calls
    ``after_backward()`` after each ``loss.backward()``; here that adds the group regulariser
    of torch-pruning's ``GroupNormPruner.regularize`` (DepGraph) on the groups the pruner ranks."""
    model.eval()
    pruner = tp.pruner.BasePruner(model, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  global_pruning=True, ignored_layers=ignored)
    groups = list(pruner.DG.get_all_groups(root_module_types=pruner.root_module_types, ignored_layers=ignored))
    return train(lambda: group_regularize(pruner, groups, reg, alpha))


@torch.no_grad()
def group_regularize(pruner, groups, reg: float, alpha: float = 16.0) -> None:
    """``grad += reg * gamma * w`` on every coupled weight of each group, gamma = alpha ** ((max - imp) /
    (max - min)) per channel (imp: the group L2 norm), so the weakest channel groups are pushed hardest.

    This is ``GroupNormPruner.regularize`` of torch-pruning 1.6, written again because that one indexes a
    ConvTranspose2d's in-channels on dim 1 (they are dim 0: IndexError on the restoration nets' upsamplers)."""
    for group in groups:
        imp = pruner.estimate_importance(group)
        if imp is None or torch.isnan(imp).any():
            continue
        imp = imp.sqrt()
        span = imp.max() - imp.min()
        gamma = alpha ** ((imp.max() - imp) / span) if span > 0 else torch.ones_like(imp)
        for item in group:
            layer, out = item.dep.target.module, pruner.DG.is_out_channel_pruning_fn(item.dep.handler)
            if not isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.modules.batchnorm._BatchNorm)):
                continue
            if getattr(layer, "weight", None) is None or layer.weight.grad is None:
                continue
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                if not out:
                    continue
                dim = 0
            elif isinstance(layer, nn.ConvTranspose2d):
                dim = 1 if out else 0
            else:
                dim = 0 if out else 1
                if not out and getattr(layer, "groups", 1) > 1:   # grouped in-channels live in the out dim
                    continue
            idx = torch.as_tensor(item.idxs, device=layer.weight.device)
            g = gamma.to(layer.weight.device).index_select(0, torch.as_tensor(item.root_idxs, device=gamma.device))
            shape = [1] * layer.weight.dim()
            shape[dim] = -1
            layer.weight.grad.index_add_(dim, idx, reg * layer.weight.data.index_select(dim, idx) * g.view(shape))

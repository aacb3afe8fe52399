"""Incremental Network Quantization (Zhou et al., ICLR 2017) of conv weights.

Per weight tensor of bit width ``b``: n1 = floor(log2(4/3 max|W|)), n2 = n1 + 1 - 2^(b-1)/2,
levels {0} U {+-2^n : n2 <= n <= n1}; a weight goes to 2^floor(log2(4|w|/3)) (clamped to
[n2, n1]) or to 0 below 2^(n2-1) (the paper's rule (alpha+beta)/2 <= |w| < 3 beta/2).
The schedule (e.g. [0.5, 0.75, 0.82, 1.0]) gives the cumulative fraction of each tensor's
weights frozen to those levels, chosen by magnitude (largest first) or at random (seeded);
between steps the free weights are retrained (frozen ones get no gradient, and are re-set
after every optimizer step so they stay exact).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def pow2_levels(w: torch.Tensor, bits: int) -> tuple[int, int]:
    n1 = math.floor(math.log2(max(float(w.abs().max()), 1e-12) * 4.0 / 3.0))
    n2 = n1 + 1 - 2 ** (bits - 1) // 2
    return n1, n2


def quantize_pow2(w: torch.Tensor, bits: int) -> torch.Tensor:
    n1, n2 = pow2_levels(w, bits)
    a = w.abs()
    e = torch.floor(torch.log2(a.clamp_min(1e-30) * 4.0 / 3.0)).clamp(n2, n1)
    q = torch.sign(w) * torch.pow(2.0, e)
    return torch.where(a < 2.0 ** (n2 - 1), torch.zeros_like(w), q)


def is_pow2_or_zero(w: torch.Tensor) -> torch.Tensor:
    a = w.abs()
    m, _ = torch.frexp(a)
    return (a == 0) | (m == 0.5)


def weights(model: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in model.modules() if isinstance(m, LAYERS)]


def partition(w: torch.Tensor, frozen: torch.Tensor, fraction: float, how: str, rng) -> torch.Tensor:
    """Grow the frozen mask of ``w`` to ``fraction`` of its elements."""
    n = w.numel()
    target = int(round(fraction * n))
    need = target - int(frozen.sum())
    if need <= 0:
        return frozen
    free = (~frozen.flatten()).nonzero().flatten()
    if how == "magnitude":
        order = torch.argsort(w.detach().flatten()[free].abs(), descending=True)
    else:
        order = torch.from_numpy(rng.permutation(len(free)))
    new = frozen.flatten().clone()
    new[free[order[:need]]] = True
    return new.view_as(frozen)


class INQ:
    """Holds the masks; ``step(fraction)`` freezes more weights, ``apply()`` re-sets frozen values."""

    def __init__(self, model: nn.Module, bits: int = 5, how: str = "magnitude", seed: int = 0):
        if how not in ("magnitude", "random"):
            raise ValueError(f"inq.partition: unknown {how!r} (known: magnitude, random)")
        self.model, self.bits, self.how = model, bits, how
        self.rng = np.random.default_rng(seed)
        self.params = weights(model)
        self.masks = [torch.zeros_like(p, dtype=torch.bool) for p in self.params]
        self.targets = [torch.zeros_like(p) for p in self.params]
        self.hooks = [p.register_hook(lambda g, i=i: g * (~self.masks[i]).to(g.dtype))
                      for i, p in enumerate(self.params)]

    def step(self, fraction: float) -> None:
        with torch.no_grad():
            for i, p in enumerate(self.params):
                self.masks[i] = partition(p, self.masks[i], fraction, self.how, self.rng)
                q = quantize_pow2(p.detach(), self.bits)
                self.targets[i] = torch.where(self.masks[i], q, self.targets[i])
        self.apply()

    def apply(self) -> None:
        with torch.no_grad():
            for p, m, t in zip(self.params, self.masks, self.targets):
                p.copy_(torch.where(m, t, p))

    def frozen_fraction(self) -> float:
        return float(sum(int(m.sum()) for m in self.masks) / max(1, sum(m.numel() for m in self.masks)))

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()


def run_inq(model: nn.Module, schedule, bits: int, how: str, seed: int, retrain=None, log=None) -> dict:
    """INQ on ``model`` in place; ``retrain(model, after_step)`` trains the free weights
    (``after_step`` must be called after each optimizer step).  Returns a summary."""
    if not schedule or any(not 0 < f <= 1 for f in schedule) or list(schedule) != sorted(schedule):
        raise ValueError(f"inq.schedule: needs increasing fractions in (0, 1], got {schedule}")
    inq = INQ(model, bits, how, seed)
    for k, frac in enumerate(schedule):
        inq.step(frac)
        if log:
            log.info("INQ step %d/%d: %.0f%% of weights powers of two", k + 1, len(schedule), 100 * inq.frozen_fraction())
        if retrain is not None and frac < 1.0:
            retrain(model, inq.apply)
    inq.remove()
    ws = torch.cat([p.detach().flatten() for p in inq.params])
    return {"frozen_fraction": inq.frozen_fraction(), "pow2_fraction": float(is_pow2_or_zero(ws).float().mean()),
            "bits": bits, "partition": how, "schedule": list(schedule)}

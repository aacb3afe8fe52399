"""Training losses shared by the stages.

``psnr_loss(pred, target) = 10 / ln(10) * ln(mean((pred - target)^2) + 1e-8)``, i.e.
10 log10(MSE + 1e-8) = -PSNR(data range 1) in dB (up to the epsilon): minimising it
maximises PSNR.  The mean runs over every element of the batch, as in the study.
"""
from __future__ import annotations

import math

import torch

EPS = 1e-8


def psnr_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Minus PSNR in dB (data range 1) of the whole batch; a scalar tensor."""
    return (10.0 / math.log(10.0)) * torch.log(torch.mean((pred - target) ** 2) + eps)

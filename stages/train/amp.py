"""Optional mixed precision, the modern form of EDGY's Apex O1 (004_9375dccc34cd3b69.txt).

``torch.autocast`` runs convolutions in low precision and keeps reductions in
float32: bf16 on CPU (no scaler needed), fp16 with a ``GradScaler`` on CUDA.
"""
from __future__ import annotations

import contextlib

import torch


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for but this container sees no GPU "
                           "(run with the compose 'gpu' profile on a GPU host, or set device: auto)")
    return torch.device("cuda" if requested in ("auto", "cuda") and torch.cuda.is_available() else "cpu")


class Amp:
    def __init__(self, enabled: bool, device: torch.device):
        self.enabled = enabled
        self.device = device
        self.dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda") if enabled and device.type == "cuda" else None

    def autocast(self):
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def step(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)
            self.scaler.update()
        else:
            loss.backward()
            opt.step()

    def describe(self) -> str:
        return f"{str(self.dtype).replace('torch.', '')} autocast" if self.enabled else "fp32"

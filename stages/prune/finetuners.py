"""Fine-tuning after each pruning step, all through ``shared.jmmc.finetune`` (AdamW + cosine).

Each loss has the ``loss(model, x, clean, boxes, kps) -> {"loss": ..., ...}`` signature of
``shared.jmmc.finetune``; ``x`` is the batch of the image variant the fine-tuning reads:

* independent restoration (enhancer ``_1 -> _0``, denoiser ``_0_noisy -> _0``): ``psnr_loss``;
* independent detector: ``YuNetLoss`` on the clean ``_0`` images (0..255, as YuNet is fed);
* joint (JMMC): ``shared.jmmc.JointLoss`` on the whole chain, degraded input (``_1_noisy``).

Batches come on the CPU; the losses move them to the model's device.
"""
from __future__ import annotations

import logging

import torch

from shared.data import Split
from shared.losses import psnr_loss

# the image variant each independent model is fine-tuned on (its training input)
INDEPENDENT_VARIANT = {"enhancer": "1", "denoiser": "0_noisy", "detector": "0"}


def _dev(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _kps(kps):
    """No landmarks (None) for images without faces: YuNetLoss cannot reshape a [0, 5, 2] tensor."""
    return [k if k is not None and len(k) else None for k in kps]


def restoration_loss(model, x, clean, boxes, kps) -> dict:
    dev = _dev(model)
    return {"loss": psnr_loss(model(x.to(dev)).float(), clean.to(dev))}


class DetectorLoss:
    """YuNetLoss on ``detector.forward_train(255 * x)``."""

    loss = None

    def __call__(self, model, x, clean, boxes, kps) -> dict:
        if self.loss is None:  # built on first use: needs mmdet
            from shared.detector_loss import YuNetLoss
            self.loss = YuNetLoss()
        x = x.to(_dev(model))
        terms = self.loss(model.forward_train(x * 255.0), boxes, _kps(kps), tuple(x.shape[-2:]))
        return {k: v for k, v in terms.items() if torch.is_tensor(v)}  # num_pos is a float


class JointTerms:
    """shared.jmmc.JointLoss with the batch moved to the chain's device."""

    def __init__(self, w_det: float, w_den: float, w_lle: float, extra=None):
        self.weights = (w_det, w_den, w_lle)
        self.joint = None
        self.extra = extra  # optional () -> scalar tensor added to the loss (e.g. NNCF's RBLoss)

    def __call__(self, model, x, clean, boxes, kps) -> dict:
        if self.joint is None:  # built on first use: needs mmdet
            from shared.jmmc import JointLoss
            self.joint = JointLoss(*self.weights)
        dev = _dev(model)
        terms = self.joint(model, x.to(dev), clean.to(dev), boxes, _kps(kps))
        if self.extra is not None:
            reg = self.extra().to(dev)
            terms = {**terms, "loss": terms["loss"] + reg, "loss_rb": reg}
        return terms


def run_finetune(model, split: Split, loss, cfg: dict, variant: str, epochs: int, seed: int,
                 log: logging.Logger, name: str, params=None) -> list[dict]:
    """``epochs`` epochs of shared.jmmc.finetune on ``variant`` inputs (nothing if epochs is 0)."""
    if epochs <= 0:
        return []
    from shared.jmmc import finetune
    ft_cfg = {"epochs": epochs, "batch_size": cfg["batch_size"], "lr": cfg["lr"],
              "weight_decay": cfg["weight_decay"], "variant": variant, "limit": cfg["limit"]}
    return finetune(model, split, loss, ft_cfg, seed, log, name, params=params)


def independent_loss(part: str):
    return DetectorLoss() if part == "detector" else restoration_loss

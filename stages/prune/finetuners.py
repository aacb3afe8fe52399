"""Fine-tuning after each pruning step, all through ``shared.jmmc.finetune`` (AdamW + cosine).

Each loss has the ``loss(model, x, clean, boxes, kps) -> {"loss": ..., ...}`` signature of
``shared.jmmc.finetune``; ``x`` is the batch of the image variant the fine-tuning reads:

* independent restoration (enhancer ``_1 -> _0``, denoiser ``_0_noisy -> _0``): ``psnr_loss``;
* independent detector: ``YuNetLoss`` on the clean ``_0`` images (0..255, as YuNet is fed);
* joint (JMMC): ``shared.jmmc.JointLoss`` on the whole chain, degraded input (``_1_noisy``).

Distillation (``prune.distill``): with a teacher (the frozen FP32 chain, or the FP32 model for an
independent one) the joint loss adds its ``loss_kd_img`` / ``loss_kd_det`` terms, and an
independent model adds the MSE of its output (restored image, or the 12 raw detector maps)
against its FP32 self.

Batches come on the CPU; the losses move them to the model's device.
"""
from __future__ import annotations

import logging

import torch

from shared import units
from shared.data import Split
from shared.losses import psnr_loss

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

    def terms(self, outs, boxes, kps, size) -> dict:
        """The loss terms of raw outputs ``outs`` (``forward_train``) on a ``size`` input."""
        if self.loss is None:  # built on first use: needs mmdet
            from shared.detector_loss import YuNetLoss
            self.loss = YuNetLoss()
        terms = self.loss(outs, boxes, _kps(kps), size)
        return {k: v for k, v in terms.items() if torch.is_tensor(v)}  # num_pos is a float

    def __call__(self, model, x, clean, boxes, kps) -> dict:
        x = x.to(_dev(model))
        return self.terms(model.forward_train(x * units.PIXEL_SCALE), boxes, kps, tuple(x.shape[-2:]))


class DistilledLoss:
    """An independent model's loss + ``weight`` x MSE of its output vs its frozen FP32 teacher's
    (restoration: the image; detector: the 12 raw maps of ``forward_train(255 x)``)."""

    def __init__(self, part: str, teacher: torch.nn.Module, weight: float):
        from shared.jmmc import frozen_copy
        self.part, self.teacher, self.weight = part, frozen_copy(teacher), weight
        self.detector = DetectorLoss()

    def __call__(self, model, x, clean, boxes, kps) -> dict:
        from shared.jmmc import maps_mse
        dev = _dev(model)
        x = x.to(dev)
        self.teacher.to(dev)
        if self.part == "detector":
            outs = model.forward_train(x * units.PIXEL_SCALE)
            terms = self.detector.terms(outs, boxes, kps, tuple(x.shape[-2:]))
            with torch.no_grad():
                t_outs = self.teacher.forward_train(x * units.PIXEL_SCALE)
            kd = maps_mse(outs, t_outs)
        else:
            y = model(x)
            terms = {"loss": psnr_loss(y.float(), clean.to(dev))}
            with torch.no_grad():
                t = self.teacher(x)
            kd = torch.mean((y.float() - t.float()) ** 2)
        return {**terms, "loss": terms["loss"] + self.weight * kd, "loss_kd": kd}


class JointTerms:
    """shared.jmmc.JointLoss with the batch moved to the chain's device (``teacher``: the frozen
    FP32 chain; ``kd``: (w_kd_img, w_kd_det))."""

    def __init__(self, w_det: float, w_den: float, w_lle: float, extra=None, teacher=None, kd=(0.0, 0.0)):
        self.weights = (w_det, w_den, w_lle)
        self.teacher, self.kd = teacher, kd
        self.joint = None
        self.extra = extra  # optional () -> scalar tensor added to the loss (e.g. NNCF's RBLoss)

    def __call__(self, model, x, clean, boxes, kps) -> dict:
        if self.joint is None:  # built on first use: needs mmdet
            from shared.jmmc import JointLoss
            self.joint = JointLoss(*self.weights, teacher=self.teacher, w_kd_img=self.kd[0], w_kd_det=self.kd[1])
        dev = _dev(model)
        terms = self.joint(model, x.to(dev), clean.to(dev), boxes, _kps(kps))
        if self.extra is not None:
            reg = self.extra().to(dev)
            terms = {**terms, "loss": terms["loss"] + reg, "loss_rb": reg}
        return terms


def run_finetune(model, split: Split, loss, cfg: dict, variant: str, epochs: int, seed: int,
                 log: logging.Logger, name: str, params=None, after_backward=None) -> list[dict]:
    """``epochs`` epochs of shared.jmmc.finetune on ``variant`` inputs (nothing if epochs is 0)."""
    if epochs <= 0:
        return []
    from shared.jmmc import finetune
    ft_cfg = {"epochs": epochs, "batch_size": cfg["batch_size"], "lr": cfg["lr"],
              "weight_decay": cfg["weight_decay"], "variant": variant, "limit": cfg["limit"]}
    return finetune(model, split, loss, ft_cfg, seed, log, name, params=params, after_backward=after_backward)


def grad_fn(model, split: Split, loss, cfg: dict, variant: str, n_batches: int, seed: int):
    """() -> None filling ``.grad`` with ``loss`` summed over ``n_batches`` training batches
    (what Taylor importance reads before each pruning step); eval mode, so BN statistics stay."""
    calls = [0]

    def grads():
        import numpy as np

        from shared.jmmc import batches
        calls[0] += 1
        rng = np.random.default_rng(seed + calls[0])
        it = batches(split, variant, cfg["batch_size"], rng, cfg["limit"])
        model.eval()
        for _, (x, clean, boxes, kps) in zip(range(n_batches), it):
            (loss(model, x, clean, boxes, kps)["loss"] / n_batches).backward()
    return grads


class Cropped:
    """A restoration loss on a random ``size`` x ``size`` window of each image (input and clean target
    alike), as the train stage trains the restoration nets (``train.restoration.crop``)."""

    def __init__(self, loss, size: int, seed: int):
        import numpy as np
        self.loss, self.size, self.rng = loss, size, np.random.default_rng(seed)

    def __call__(self, model, x, clean, boxes, kps) -> dict:
        h, w = x.shape[-2:]
        s = self.size
        if s >= h and s >= w:
            return self.loss(model, x, clean, boxes, kps)
        s_h, s_w = min(s, h), min(s, w)
        at = [(int(self.rng.integers(0, h - s_h + 1)), int(self.rng.integers(0, w - s_w + 1))) for _ in range(len(x))]
        xc = torch.stack([x[k, :, i:i + s_h, j:j + s_w] for k, (i, j) in enumerate(at)])
        cc = torch.stack([clean[k, :, i:i + s_h, j:j + s_w] for k, (i, j) in enumerate(at)])
        return self.loss(model, xc, cc, boxes, kps)


def independent_loss(part: str, teacher=None, weight: float = 0.0, crop: int | None = None, seed: int = 0):
    """The independent loss of ``part``; with a teacher and a weight, distilled from it; a restoration
    part with ``crop`` sees random ``crop`` x ``crop`` windows (:class:`Cropped`)."""
    if teacher is not None and weight:
        loss = DistilledLoss(part, teacher, weight)
    else:
        loss = DetectorLoss() if part == "detector" else restoration_loss
    return Cropped(loss, crop, seed) if crop and part != "detector" else loss

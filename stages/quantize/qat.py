"""Single-shot QAT of a QuantSim (per model) and the joint QAT of the whole pipeline (JMMC).

Both run through ``shared.jmmc.finetune`` (AdamW, cosine schedule, per-epoch history)
on the train split; only the loss differs:

* enhancer / denoiser: ``psnr_loss(sim.model(x), clean)`` on their degraded inputs
  (``_1`` / ``_0_noisy``);
* detector: ``shared.detector_loss.YuNetLoss`` on ``forward_train(255 * x)`` (clean ``_0``
  images, as the train stage trains it);
* pipeline: ``shared.jmmc.JointLoss`` (detector loss back-propagated through the chain,
  restoration terms weighted by ``w_den`` / ``w_lle``) on the eval variant.
"""
from __future__ import annotations

import torch

from shared import units
from shared.losses import psnr_loss

def unit_loss(name: str, joint_weights: dict | None = None):
    if name == "pipeline":
        from shared.jmmc import JointLoss
        return JointLoss(**(joint_weights or {}))
    if name == "detector":
        from shared.detector_loss import YuNetLoss
        det = YuNetLoss()

        def detector_loss(model, x, clean, boxes, kps):
            out = det(model.forward_train(x * units.PIXEL_SCALE), boxes, kps, tuple(x.shape[-2:]))
            return {"loss": out["loss"]}
        return detector_loss

    def restoration_loss(model, x, clean, boxes, kps):
        return {"loss": psnr_loss(model(x), clean)}
    return restoration_loss


def qat(sim, name: str, train_split, cfg: dict, eval_variant: str, seed: int, log, joint_weights=None):
    """Fine-tune ``sim.model`` in place (weights and quantizer ranges); returns the history."""
    from shared.jmmc import finetune
    run_cfg = {"epochs": cfg["epochs"], "batch_size": cfg["batch_size"], "lr": cfg["lr"],
               "weight_decay": cfg.get("weight_decay", 0.0), "limit": cfg.get("limit"),
               "variant": units.train_variant(name, eval_variant)}
    torch.manual_seed(seed)
    return finetune(sim.model, train_split, unit_loss(name, joint_weights), run_cfg, seed, log, f"qat {name}")

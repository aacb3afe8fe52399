"""JMMC: the chained system fine-tuned as one unit with a joint loss (prune and quantize stages).

    L = w_det * L_det(detector outputs, faces)
      + w_den * L_psnr(denoiser output, clean)
      + w_lle * L_psnr(enhancer output, clean)
      + w_kd_img * (MSE(enhanced, enhanced_T) + MSE(denoised, denoised_T))     (with a teacher)
      + w_kd_det * mean_k MSE(raw_k, raw_k_T)                                   (with a teacher)

``L_det`` is ``shared.detector_loss.YuNetLoss`` (the same code mmdet trains
YuNet with) and ``L_psnr`` is ``shared.losses.psnr_loss``.  ``w_den = w_lle =
0`` is the study's setting (detector losses only, back-propagated through the
whole chain).  The distillation terms compare the student chain with a frozen
teacher chain (the trained FP32 pipeline, ``frozen_copy``) on the same input:
the restored images and the detector's 12 raw output maps
(``Pipeline.forward(x, return_intermediate=True, raw=True)``; cls/obj as logits).
``JointLoss`` needs mmdet (the detector loss); ``batches``, ``finetune``,
``frozen_copy`` and ``maps_mse`` do not.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from shared.data import Split, to_float
from shared.losses import psnr_loss


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in eval mode with every parameter frozen (in place): a distillation teacher."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen deep copy (see ``freeze``)."""
    return freeze(copy.deepcopy(model))


def maps_mse(student, teacher) -> torch.Tensor:
    """Mean over the paired maps of their MSE (each map weighs the same, whatever its size)."""
    pairs = list(zip(student, teacher, strict=True))
    return sum(torch.mean((s.float() - t.float()) ** 2) for s, t in pairs) / len(pairs)


@dataclass
class JointLoss:
    w_det: float = 1.0
    w_den: float = 0.0
    w_lle: float = 0.0
    teacher: torch.nn.Module | None = None   # frozen FP32 chain (frozen_copy); None: no distillation
    w_kd_img: float = 0.0                    # MSE of enhanced + denoised images vs the teacher's
    w_kd_det: float = 0.0                    # MSE of the 12 raw detector maps vs the teacher's

    def __post_init__(self):
        from shared.detector_loss import YuNetLoss  # mmdet: imported only where the joint loss is used
        self.det_loss = YuNetLoss()
        if self.teacher is not None:
            freeze(self.teacher)

    @property
    def distills(self) -> bool:
        return self.teacher is not None and bool(self.w_kd_img or self.w_kd_det)

    def __call__(self, pipe: torch.nn.Module, x: torch.Tensor, clean: torch.Tensor,
                 boxes: list[torch.Tensor], kps: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        outs, enhanced, denoised = pipe(x, return_intermediate=True, raw=True)
        det = self.det_loss(outs, boxes, kps, tuple(x.shape[-2:]))
        terms = {"loss_det": det["loss"], "loss_den": psnr_loss(denoised.float(), clean),
                 "loss_lle": psnr_loss(enhanced.float(), clean)}
        total = self.w_det * terms["loss_det"]
        if self.w_den:
            total = total + self.w_den * terms["loss_den"]
        if self.w_lle:
            total = total + self.w_lle * terms["loss_lle"]
        if self.distills:
            kd = self.distill_terms(x, outs, enhanced, denoised)
            terms.update(kd)
            total = total + self.w_kd_img * kd["loss_kd_img"] + self.w_kd_det * kd["loss_kd_det"]
        return {"loss": total, **terms}

    def distill_terms(self, x, outs, enhanced, denoised) -> dict[str, torch.Tensor]:
        """The two distillation terms (unweighted) of the student's forward vs the teacher's."""
        t = self.teacher
        if next(t.parameters()).device != x.device:
            t.to(x.device)
        with torch.no_grad():
            t_outs, t_enh, t_den = t(x, return_intermediate=True, raw=True)
        return {"loss_kd_img": torch.mean((enhanced.float() - t_enh.float()) ** 2)
                + torch.mean((denoised.float() - t_den.float()) ** 2),
                "loss_kd_det": maps_mse(outs, t_outs)}


def batches(split: Split, variant: str, batch_size: int, rng: np.random.Generator,
            limit: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor, list, list]]:
    """Shuffled (degraded x, clean, boxes [n,4], landmarks [n,5,2]) batches of a split."""
    n = len(split) if limit is None else min(limit, len(split))
    gts = split.gts(n)
    order = rng.permutation(n)
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        x = to_float(np.stack([split.image(j, variant) for j in idx]))
        y = to_float(np.stack([split.image(j, "0") for j in idx]))
        boxes = [torch.from_numpy(gts[j][:, :4].copy()) for j in idx]
        kps = [torch.from_numpy(gts[j][:, 4:14].reshape(-1, 5, 2).copy()) for j in idx]
        yield torch.from_numpy(x), torch.from_numpy(y), boxes, kps


def finetune(model: torch.nn.Module, split: Split, loss: Callable, cfg: dict, seed: int,
             log: logging.Logger, name: str, params=None,
             after_backward: Callable[[], object] | None = None) -> list[dict]:
    """Fine-tune ``model`` (a chained system) end to end with ``loss``.

    cfg: epochs, batch_size, lr, weight_decay, variant (degraded input), limit.
    AdamW with a cosine schedule; returns per-epoch mean loss terms.  ``after_backward()``
    runs between ``backward`` and the optimizer step (e.g. torch-pruning's ``regularize``,
    which adds its sparsity term to the gradients).
    """
    params = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    n = len(split) if cfg.get("limit") is None else min(cfg["limit"], len(split))
    steps = max(1, cfg["epochs"] * -(-n // cfg["batch_size"]))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    rng = np.random.default_rng(seed)
    history = []
    model.train()
    for epoch in range(cfg["epochs"]):
        t0, sums, count = time.time(), {}, 0
        bar = tqdm(batches(split, cfg["variant"], cfg["batch_size"], rng, cfg.get("limit")),
                   total=-(-n // cfg["batch_size"]), desc=f"{name} {epoch + 1}/{cfg['epochs']}", leave=False)
        for x, clean, boxes, kps in bar:
            terms = loss(model, x, clean, boxes, kps)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if after_backward is not None:
                after_backward()
            opt.step()
            sched.step()
            count += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            bar.set_postfix(loss=f"{sums['loss'] / count:.3f}")
        row = {"epoch": epoch + 1, **{k: v / max(count, 1) for k, v in sums.items()},
               "images_per_s": n / (time.time() - t0)}
        history.append(row)
        terms = ", ".join(f"{k[5:]} {row[k]:.4f}" for k in ("loss_det", "loss_kd", "loss_kd_img", "loss_kd_det")
                          if k in row)   # a loss without a term (a restoration net has no det) does not log it
        log.info("%s epoch %d: loss %.4f%s", name, epoch + 1, row.get("loss", float("nan")),
                 f" ({terms})" if terms else "")
    model.eval()
    return history

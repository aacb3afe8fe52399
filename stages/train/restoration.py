"""Train one restoration net (enhancer: ``_1 -> _0``, denoiser: ``_0_noisy -> _0``).

PSNR loss (shared.losses.psnr_loss), AdamW with a cosine schedule, random
crops, seeded order; returns per-epoch history (loss, train PSNR, images/s).
"""
from __future__ import annotations

import logging
import time

import numpy as np
import torch
from tqdm import tqdm

from shared.data import Split, to_float
from shared.losses import psnr_loss
from stages.train.amp import Amp


def load_pairs(split: Split, src: str, dst: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    return split.images(src, limit), split.images(dst, limit)


def random_crops(x: np.ndarray, y: np.ndarray, crop: int | None, rng: np.random.Generator):
    """Same random crop (and horizontal flip) of each input/target pair; uint8 NHWC in, float NCHW out."""
    n, h, w = x.shape[:3]
    if crop and crop < min(h, w):
        tops, lefts = rng.integers(0, h - crop + 1, n), rng.integers(0, w - crop + 1, n)
        x = np.stack([x[i, t:t + crop, l:l + crop] for i, (t, l) in enumerate(zip(tops, lefts))])
        y = np.stack([y[i, t:t + crop, l:l + crop] for i, (t, l) in enumerate(zip(tops, lefts))])
    flip = rng.random(n) < 0.5
    x[flip], y[flip] = x[flip, :, ::-1], y[flip, :, ::-1]
    return to_float(x), to_float(y)


def train_restoration(model: torch.nn.Module, split: Split, src: str, dst: str, cfg: dict, amp: Amp,
                      seed: int, log: logging.Logger, name: str) -> list[dict]:
    x_all, y_all = load_pairs(split, src, dst, cfg["limit"])
    n = len(x_all)
    if n == 0:
        raise ValueError(f"{name}: no training pairs in {split.root}")
    dev = amp.device
    model.to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps_per_epoch = -(-n // cfg["batch_size"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["epochs"] * steps_per_epoch)
    rng = np.random.default_rng(seed)
    history = []
    log.info("%s: %d pairs %s -> %s, %d epochs, %s", name, n, src, dst, cfg["epochs"], amp.describe())
    for epoch in range(cfg["epochs"]):
        order = rng.permutation(n)
        t0, losses = time.time(), []
        bar = tqdm(range(0, n, cfg["batch_size"]), desc=f"{name} {epoch + 1}/{cfg['epochs']}", leave=False)
        for i in bar:
            idx = np.sort(order[i:i + cfg["batch_size"]])
            xb, yb = random_crops(x_all[idx].copy(), y_all[idx].copy(), cfg["crop"], rng)
            xb, yb = torch.from_numpy(xb).to(dev), torch.from_numpy(yb).to(dev)
            with amp.autocast():
                loss = psnr_loss(model(xb).float(), yb)
            amp.step(loss, opt)
            sched.step()
            losses.append(loss.item())
            bar.set_postfix(psnr=f"{-np.mean(losses):.2f}")
        dt = time.time() - t0
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "train_psnr": float(-np.mean(losses)),
                        "images_per_s": n / dt, "lr": sched.get_last_lr()[0]})
        log.info("%s epoch %d: train PSNR %.2f dB, %.1f img/s", name, epoch + 1, -np.mean(losses), n / dt)
    model.eval()
    return history

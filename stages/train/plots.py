"""Training curves and a strip of test images through the chain (PNG)."""
from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def curves(history: dict[str, list[dict]], path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name in ("enhancer", "denoiser"):
        h = history.get(name) or []
        axes[0].plot([r["epoch"] for r in h], [r["train_psnr"] for r in h], marker="o", label=name)
    axes[0].set(title="restoration: train PSNR (dB)", xlabel="epoch")
    axes[0].legend()
    det = history.get("detector") or []
    for key in ("loss", "loss_cls", "loss_bbox", "loss_obj", "loss_kps"):
        if det and key in det[0]:
            axes[1].plot([r["epoch"] for r in det], [r[key] for r in det], marker=".", label=key)
    axes[1].set(title="YuNet (mmdet): training loss", xlabel="epoch", yscale="log")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def strip(rows: list[dict[str, np.ndarray]], path: Path) -> None:
    """rows: dicts of column title -> BGR image; one row per test image."""
    cols = list(rows[0])
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(2.6 * len(cols), 2.6 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        for c, title in enumerate(cols):
            axes[r][c].imshow(cv2.cvtColor(row[title], cv2.COLOR_BGR2RGB))
            axes[r][c].axis("off")
            if r == 0:
                axes[r][c].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

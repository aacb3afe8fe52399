"""The strip: test images as degraded input -> enhanced -> denoised -> detections, per chain variant.

One row per (variant, image).  The 10 best detections with score >= 0.5 (after the
protocol's NMS) in red with their score and 5 landmarks; ground-truth boxes in thin green.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from shared.data import to_float, to_uint8  # noqa: E402
from shared.drawing import draw_detections  # noqa: E402
from shared.evaluation import Protocol  # noqa: E402
from stages.report.measure import chain_functions, detections, restored_images  # noqa: E402


def chain_panels(group: dict, test, proto: Protocol, n: int) -> list[list[np.ndarray]]:
    """Per image: [degraded, enhanced, denoised, detections drawn on denoised] (BGR uint8)."""
    imgs = test.images(proto.variant, n)
    e, d = restored_images(group, to_float(imgs))
    _, system = chain_functions(group)
    dets = detections(system, test, proto, n)
    gts = test.gts(n)
    e8, d8 = to_uint8(e), to_uint8(d)
    return [[imgs[i], e8[i], d8[i], draw_detections(d8[i], dets[i], gts[i])] for i in range(len(imgs))]


def save_strip(variants: dict[str, list[list[np.ndarray]]], path: Path,
               titles=("degraded input", "enhanced", "denoised", "detections (best 10, score ≥ 0.5)")) -> None:
    rows = [(name, panels) for name, per_img in variants.items() for panels in per_img]
    if not rows:
        raise ValueError("no images for the strip")
    ncol = len(titles)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2.6 * ncol, 2.6 * len(rows)), squeeze=False)
    for r, (name, panels) in enumerate(rows):
        for c in range(ncol):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(panels) and panels[c] is not None:
                ax.imshow(cv2.cvtColor(panels[c], cv2.COLOR_BGR2RGB))
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(textwrap.fill(name, 28), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

"""photos.png: one row per (photo, condition), first column the MTCNN reference faces, then each artifact's
detections (score >= photos.score_thr, red, with landmarks) over the reference boxes (green)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from shared.drawing import draw_detections  # noqa: E402

BANNER = ("OUTSIDE THE TRAINING DOMAIN - real photographs (bundled with scikit-image), models trained on "
          "synthetic faces only; reference boxes (green) from facenet-pytorch MTCNN, not human labels")


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def save_grid(rows: list[dict], columns: list[dict], path: Path, score_thr: float) -> None:
    """``rows``: [{"label", "image" (BGR), "ref" [M, 4], "dets": {column name: [K, 15]}}];
    ``columns``: [{"name", "label", "summary": {condition: score dict}}]."""
    ncol = 1 + len(columns)
    width, height = 2.3 * ncol + 0.4, 2.5 * len(rows) + 1.5
    fig, axes = plt.subplots(len(rows), ncol, figsize=(width, height), squeeze=False)
    # fixed margins (tight_layout over dozens of axes costs seconds): 1.5 in on top for the banner and
    # the column titles, 0.4 in on the left for the row labels
    fig.subplots_adjust(left=0.4 / width, right=1 - 0.05 / width, bottom=0.3 / height, top=1 - 1.5 / height,
                        wspace=0.06, hspace=0.2)
    for r, row in enumerate(rows):
        for c in range(ncol):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                img = draw_detections(row["image"], np.zeros((0, 15), np.float32), row["ref"])
                ax.set_ylabel(textwrap.fill(row["label"], 22), fontsize=8)
                ax.set_xlabel(f"{len(row['ref'])} reference face(s)", fontsize=7)
            else:
                col = columns[c - 1]
                dets = row["dets"][col["name"]]
                img = draw_detections(row["image"], dets, row["ref"], min_score=score_thr)
                per = row["per"][col["name"]]
                ax.set_xlabel(f"tp {per['tp']}  fp {per['fp']}", fontsize=7)
            ax.imshow(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            if r == 0:
                if c == 0:
                    ax.set_title("MTCNN reference", fontsize=8)
                else:
                    col = columns[c - 1]
                    lines = [col["label"]] + [f"{k}: R {_fmt(s['recall'])} P {_fmt(s['precision'])} AP {_fmt(s['ap'])}"
                                              for k, s in col["summary"].items()]
                    ax.set_title("\n".join(textwrap.fill(x, 30) for x in lines), fontsize=6.5)
    fig.suptitle(textwrap.fill(BANNER, 20 * ncol + 40) + f"\nIoU 0.5, detections shown at score >= {score_thr:g}",
                 fontsize=9, color="darkred", fontweight="bold", y=1 - 0.1 / height, va="top")
    fig.savefig(path, dpi=100)
    plt.close(fig)

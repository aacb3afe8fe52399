"""The stage's table: variant x (AP, NME, IoU, missed, PSNR, params, MACs, bytes), as CSV and Markdown.

Reductions are relative to the first row (the FP32 chain from the train stage).
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

COLUMNS = ["variant", "mode", "ratio", "ap", "nme", "iou", "missed", "psnr", "params", "macs", "bytes",
           "bytes_deflate", "weight_sparsity", "macs_reduction", "params_reduction"]


def with_reductions(rows: list[dict]) -> list[dict]:
    base = rows[0]
    out = []
    for r in rows:
        r = dict(r)
        r["macs_reduction"] = 1 - r["macs"] / base["macs"]
        r["params_reduction"] = 1 - r["params"] / base["params"]
        out.append(r)
    return out


def _fmt(v, col) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if col in ("macs_reduction", "params_reduction", "weight_sparsity"):
        return f"{100 * v:.1f} %"
    if col == "macs":
        return f"{v / 1e6:.2f}M"
    if isinstance(v, float):
        return f"{v:.4f}" if col in ("nme", "ratio") else f"{v:.3f}" if col != "psnr" else f"{v:.2f}"
    return str(v)


def write(rows: list[dict], out: Path) -> tuple[Path, Path]:
    rows = with_reductions(rows)
    csv_path, md_path = out / "table.csv", out / "table.md"
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c) for c in COLUMNS})
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(r.get(c), c) for c in COLUMNS) + " |" for r in rows]
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path

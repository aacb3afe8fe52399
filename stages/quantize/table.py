"""The results table: one row per (candidate, model, method, bits, seed), CSV + Markdown.

Columns: metrics in the AIMET simulation (``sim_*``) and on the exported ONNX in ONNX
Runtime (``onnx_*``), both on the split named in ``split`` (test: reported only), the
simulation on the val split (``sim_val_*``: what selections are made on), their largest
gap (for detection units also AP(file) - AP(sim) with its paired bootstrap interval), INT8/FP32 bytes (FP32: the candidate's own FP32 model, pruned widths for a pruned one).
``summary`` groups rows over seeds (mean and standard deviation, as the study reports them).
"""
from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

METRICS = ("ap", "nme", "top_box_iou", "missed", "psnr", "ssim")
GROUP = ("candidate", "model", "method", "bits")
SOURCES = ("sim", "onnx", "sim_val")


def flat(row: dict) -> dict:
    out = {k: row.get(k) for k in (*GROUP, "seed", "split")}
    for src in SOURCES:
        for k in METRICS:
            v = (row.get(src) or {}).get(k)
            if v is not None:
                out[f"{src}_{k}"] = v
    out["max_gap"] = row.get("max_gap")
    g = row.get("gap_ap")
    if g:   # AP(file) - AP(sim), paired bootstrap 95 % interval
        out.update(onnx_minus_sim_ap=g["value"], onnx_minus_sim_ap_lo=g["lo"], onnx_minus_sim_ap_hi=g["hi"])
    out["int8_bytes"] = row.get("int8_bytes")
    out["fp32_bytes"] = row.get("fp32_bytes")
    return out


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def write(rows: list[dict], out: Path, stem: str = "results") -> list[dict]:
    table = [flat(r) for r in rows]
    cols = list(dict.fromkeys(k for r in table for k in r))
    with open(out / f"{stem}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        w.writerows(table)
    summary = summarize(table)
    scols = list(dict.fromkeys(k for r in summary for k in r))
    lines = ["# Quantization results", "",
             "Per run (sim = AIMET/NNCF simulation in torch, onnx = ONNX Runtime, both on the `split` column's split; "
             "sim_val = the simulation on val, where choices are made):", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in table]
    lines += ["", "Mean ± std over seeds:", "", "| " + " | ".join(scols) + " |", "|" + "---|" * len(scols)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) if not isinstance(r.get(c), tuple) else
                                f"{r[c][0]:.4g} ± {r[c][1]:.2g}" for c in scols) + " |" for r in summary]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return summary


def summarize(table: list[dict]) -> list[dict]:
    groups = defaultdict(list)
    for r in table:
        groups[tuple(r.get(k) for k in GROUP)].append(r)
    out = []
    for key, rs in groups.items():
        row = dict(zip(GROUP, key))
        row["seeds"] = len(rs)
        for c in (f"{s}_{m}" for s in SOURCES for m in METRICS):
            vals = [r[c] for r in rs if isinstance(r.get(c), (int, float)) and not math.isnan(r[c])]
            if vals:
                mean = sum(vals) / len(vals)
                std = (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5
                row[c] = (mean, std)
        out.append(row)
    return out

"""The results table: one row per artifact (plus one per chain), written as CSV and Markdown.

A row is a flat dict keyed by ``COLUMNS``; missing values are ``None`` (CSV: empty,
Markdown: "–").  ``skipped_rows`` lists every stage or target that did not run and why.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from stages.report.records import StageInfo

# (key, header, format) - the study's columns (AP, NME, IoU, missed, PSNR, SSIM, params,
# MACs, size: weight bytes as stored and the file) then host latency (ONNX Runtime), chain throughput, OpenVINO's
# accuracy and latency of each whole-system file, and where the accuracy comes from.
COLUMNS = [
    ("artifact", "artifact", "s"), ("stage", "stage", "s"), ("group", "group", "s"),
    ("role", "role", "s"), ("precision", "precision", "s"),
    ("ap", "AP@0.5", ".3f"), ("nme", "NME", ".4f"), ("top_box_iou", "IoU", ".3f"),
    ("missed", "missed", "d"), ("psnr", "PSNR dB", ".2f"), ("ssim", "SSIM", ".3f"),
    ("params", "params", ","), ("macs", "MACs", "M"),
    ("weight_bytes", "weight bytes", "k"), ("bytes", "file bytes", "k"),
    ("lat_1_ms", "ms 1T", ".2f"), ("lat_1_p90_ms", "p90 1T", ".2f"),
    ("lat_all_ms", "ms allT", ".2f"), ("lat_all_p90_ms", "p90 allT", ".2f"),
    ("fps_serial", "fps serial", ".1f"), ("fps_parallel", "fps parallel", ".1f"),
    ("ov_ap", "AP OpenVINO", ".3f"), ("ov_1_ms", "OV ms 1T", ".2f"), ("ov_all_ms", "OV ms allT", ".2f"),
    ("source", "accuracy from", "s"),
]
KEYS = [k for k, _, _ in COLUMNS]


def make_row(**values) -> dict:
    row = {k: None for k in KEYS}
    unknown = set(values) - set(KEYS)
    if unknown:
        raise KeyError(f"unknown result column(s): {sorted(unknown)}")
    row.update(values)
    return row


def latency_cells(lat: dict | None) -> dict:
    """{thread label: {median_ms, p90_ms}} -> lat_<label>_ms / lat_<label>_p90_ms cells (1 and all)."""
    out = {}
    for label, r in (lat or {}).items():
        if f"lat_{label}_ms" in KEYS:
            out[f"lat_{label}_ms"] = r["median_ms"]
            out[f"lat_{label}_p90_ms"] = r["p90_ms"]
    return out


def fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if spec == "s":
        return str(value)
    if spec == "d":
        return str(int(value))
    if spec == ",":
        return f"{int(value):,}"
    if spec == "M":
        return f"{value / 1e6:.1f} M"
    if spec == "k":
        return f"{value / 1024:.1f} KiB" if value < 1024 ** 2 else f"{value / 1024 ** 2:.2f} MiB"
    return format(float(value), spec)


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=KEYS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r[k]) for k in KEYS})


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def markdown(rows: list[dict], columns=COLUMNS, pareto: set[str] = frozenset()) -> str:
    """A GitHub table; artifacts on the AP-vs-bytes Pareto front are marked with a star."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |",
             "|" + "|".join("---" if s == "s" else "---:" for _, _, s in columns) + "|"]
    for r in rows:
        cells = []
        for k, _, s in columns:
            c = fmt(r.get(k), s)
            if k == "artifact" and r.get("artifact") in pareto:
                c += " ★"
            cells.append(c.replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def nested_skips(metrics, prefix: str = ""):
    """(where, reason) for every ``skipped: "..."`` string inside a metrics tree."""
    if isinstance(metrics, dict):
        for k, v in metrics.items():
            where = f"{prefix}.{k}" if prefix else str(k)
            if k == "skipped" and isinstance(v, str) and v:
                yield prefix or "(stage)", v
            else:
                yield from nested_skips(v, where)
    elif isinstance(metrics, list):
        for i, v in enumerate(metrics):
            yield from nested_skips(v, f"{prefix}[{i}]")


def skipped_rows(stages: list[StageInfo], extra: list[tuple[str, str]] = ()) -> list[dict]:
    """[{what, reason}] for stages that did not run, targets inside stages that were skipped,
    stages read without being declared dependencies, and report parts that could not be made."""
    out = []
    for s in stages:
        if s.skipped:
            out.append({"what": f"stage {s.name}", "reason": s.skipped})
        if s.manifest:
            for where, why in nested_skips(s.manifest.get("metrics") or {}):
                out.append({"what": f"{s.name}: {where}", "reason": why})
        if s.manifest and not s.declared:
            out.append({"what": f"stage {s.name} (read, not a dependency)",
                        "reason": "not in report.deps in stages/pipeline.yaml: a rerun of it does not refresh the report"})
    out += [{"what": w, "reason": r} for w, r in extra]
    return out


def skipped_markdown(rows: list[dict]) -> str:
    if not rows:
        return "Nothing was skipped: every stage of stages/pipeline.yaml ran.\n"
    return "\n".join(f"- **{r['what']}**: {r['reason']}" for r in rows) + "\n"

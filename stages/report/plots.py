"""Figures (PNG, matplotlib Agg): trade-offs with the Pareto front, the PTQ grid, independent vs joint.

Tables from upstream stages are read generically (``csv.DictReader``): the metric column
is the first of ``METRIC_COLS`` present, the seed column ``seed``; the joint/independent
column is the first whose values mention ``joint``; the compression level is the first of
``LEVEL_COLS`` present.  A table that does not fit returns a reason instead of a plot.
"""
from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from stages.report.pareto import pareto_front  # noqa: E402

METRIC_COLS = ("ap", "AP", "ap50", "AP@0.5", "ap_0.5", "map", "onnx_ap", "sim_ap")   # quantize: deployed ONNX first
LEVEL_COLS = ("level", "sparsity", "ratio", "prune_ratio", "compression", "bitwidth", "bits", "precision")
SEED_COLS = ("seed",)
ROLE_MARKERS = {"detector": "s", "pipeline": "o", "chain": "D"}


def _num(v):
    try:
        f = float(v)
        return None if math.isnan(f) else f
    except (TypeError, ValueError):
        return None


def short_name(artifact: str) -> str:
    """A plot label: the artifact path without the folders every row shares and the suffix."""
    for noise in ("variants/", "train-fp32/", "_min_max", ".onnx"):
        artifact = artifact.replace(noise, "")
    return artifact


def tradeoff(rows: list[dict], x_key: str, path: Path, xlabel: str, title: str) -> list[str] | None:
    """AP (y) vs a cost (x, log) for the detection rows; Pareto front drawn and returned (artifacts).
    Only the points on the front are labelled (every point is in the table)."""
    pts = [r for r in rows if _num(r.get("ap")) is not None and _num(r.get(x_key)) and r.get("role") in ROLE_MARKERS]
    if not pts:
        return None
    xs, ys = [float(r[x_key]) for r in pts], [float(r["ap"]) for r in pts]
    front = pareto_front(xs, ys)
    fig, ax = plt.subplots(figsize=(10, 5.5))
    stages = sorted({r["stage"] for r in pts})
    colors = {s: plt.cm.tab10(i % 10) for i, s in enumerate(stages)}
    for i, (r, x, y) in enumerate(zip(pts, xs, ys)):
        if r.get("_ap_ci"):      # bootstrap 95 % interval of AP where the metrics carry one
            lo, hi = r["_ap_ci"]
            ax.errorbar(x, y, yerr=[[max(0.0, y - lo)], [max(0.0, hi - y)]], fmt="none", ecolor=colors[r["stage"]],
                        capsize=3, lw=1, zorder=2)
        ax.scatter(x, y, marker=ROLE_MARKERS[r["role"]], color=colors[r["stage"]], s=55 if i in front else 35,
                   zorder=3, edgecolor="black" if i in front else "none", linewidth=1.2, alpha=1 if i in front else 0.7)
    for k, i in enumerate(front):
        ax.annotate(short_name(pts[i]["artifact"]), (xs[i], ys[i]), fontsize=7, xytext=(6, -12 - 9 * (k % 2)),
                    textcoords="offset points")
    ax.step([xs[i] for i in front], [ys[i] for i in front], where="post", color="black", lw=1,
            ls="--", label="Pareto front", zorder=2)
    for s in stages:
        ax.scatter([], [], color=colors[s], label=s)
    for role, m in ROLE_MARKERS.items():
        ax.scatter([], [], marker=m, color="grey", label=role)
    if max(xs) / min(xs) > 20:
        ax.set_xscale("log")
    else:  # a narrow range reads better on a linear axis
        xlabel = xlabel.replace(", log", "")
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    ax.set_xlabel(xlabel)
    tops = ys + [r["_ap_ci"][1] for r in pts if r.get("_ap_ci")]
    ax.set_ylabel("AP@0.5" + (" (whiskers: bootstrap 95 % interval, test)" if len(tops) > len(ys) else ""))
    ax.set_ylim(0, min(1.02, max(0.05, max(tops) * 1.15)))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [pts[i]["artifact"] for i in front]


def read_table(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _pick(cols, options):
    return next((c for c in options if c in cols), None)


MEASURES = re.compile(r"^(ap.*|map|nme|iou|top_box_iou|missed|psnr.*|ssim.*|.*bytes|size.*|params|macs|n_gt|n_images"
                      r"|(sim|onnx)_.*|.*_gap"
                      r"|fps.*|.*_ms|.*_s|.*seconds|.*latency.*|.*time.*|file|path|artifact|sqnr.*|loss.*)$", re.I)


def _is_axis(col: str, values: list) -> bool:
    """A grid axis: varies, is not a measurement, and is text or a small set of numbers (e.g. bits)."""
    distinct = set(values)
    if len(distinct) < 2 or MEASURES.match(col):
        return False
    return not all(_num(v) is not None for v in values) or len(distinct) <= 6


def ptq_grid(table: Path, path: Path) -> str | None:
    """Grouped bars: one bar per grid cell (the non-metric, non-seed columns), mean +- std over
    seeds, min/max as dots.  Returns None when drawn, else why not."""
    rows = read_table(table)
    if not rows:
        return f"{table.name} is empty"
    cols = list(rows[0])
    metric = _pick(cols, METRIC_COLS)
    if metric is None:
        return f"{table.name} has no AP column (one of {', '.join(METRIC_COLS)})"
    seed = _pick(cols, SEED_COLS)
    keys = [c for c in cols if c not in (metric, seed) and _is_axis(c, [r[c] for r in rows])]
    hue = keys[-1] if len(keys) > 1 else None
    cell_keys = [c for c in keys if c != hue]
    cells: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        v = _num(r[metric])
        if v is not None:
            cells[tuple(r[c] for c in cell_keys)][r[hue] if hue else metric].append(v)
    hues = sorted({h for c in cells.values() for h in c})
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(cells) * max(1, len(hues))), 4.5))
    width = 0.8 / len(hues)
    for j, h in enumerate(hues):
        for i, (cell, by) in enumerate(sorted(cells.items())):
            vals = by.get(h)
            if not vals:
                continue
            mean = sum(vals) / len(vals)
            std = (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5
            x = i + (j - (len(hues) - 1) / 2) * width
            ax.bar(x, mean, width, yerr=std if len(vals) > 1 else None, capsize=3,
                   color=plt.cm.tab10(j % 10), label=h if i == 0 else None)
            ax.scatter([x] * len(vals), vals, s=8, color="black", zorder=3)
    ax.set_xticks(range(len(cells)))
    ax.set_xticklabels([" / ".join(c) or "all" for c in sorted(cells)], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"{metric} (mean ± std over {seed or 'runs'}; dots: each {seed or 'run'})")
    ax.set_title(f"PTQ grid ({table.name})")
    ax.grid(axis="y", alpha=0.3)
    if hue:
        ax.legend(title=hue, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def joint_series(tables: list[Path]) -> tuple[dict[str, dict[str, list[float]]], list[Path]]:
    """{"<stage>:joint|independent": {level: [AP, ...]}} from every table with both kinds of rows.
    A row counts when its mode column names ``joint`` or ``independent``; FP32, sparsity, PTQ and
    other rows are not either and stay out of the comparison."""
    series: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    used = []
    for t in tables:
        rows = read_table(t)
        if not rows:
            continue
        cols = list(rows[0])
        metric, level = _pick(cols, METRIC_COLS), _pick(cols, LEVEL_COLS)
        mode = next((c for c in cols if any("joint" in str(r[c]).lower() for r in rows)), None)
        if not (metric and level and mode):
            continue
        used.append(t)
        for r in rows:
            v, m = _num(r[metric]), str(r[mode]).lower()
            kind = "joint" if "joint" in m else "independent" if "independent" in m else None
            if v is not None and kind:
                series[f"{t.parent.name}:{kind}"][r[level]].append(v)
    return series, used


def joint_vs_independent(tables: list[Path], path: Path, diffs: list[dict] = ()) -> str | None:
    """AP at each compression level, independent vs joint, from every table that has both; with
    ``diffs`` ({label, value, lo, hi}: joint − independent AP with its paired bootstrap interval,
    stages/report/intervals.py) a second panel shows them as whiskers."""
    from stages.report.intervals import forest
    series, used = joint_series(tables)
    if not used and not diffs:
        return "no prune/quantize table with an AP column, a level column and joint/independent rows"
    levels = sorted({lv for s in series.values() for lv in s}, key=lambda s: (_num(s) is None, _num(s) or 0, s))
    width_bars = max(6, 0.8 * len(levels) * len(series)) if used else 0
    if diffs:
        fig, axes = plt.subplots(1, 2 if used else 1, figsize=(width_bars + 8, max(4.5, 1.2 + 0.55 * len(diffs))),
                                 squeeze=False, gridspec_kw={"width_ratios": [width_bars, 8] if used else [1]})
        forest(axes[0][-1], list(diffs), "joint − independent ΔAP@0.5 (test), paired bootstrap 95 %")
        axes[0][-1].set_title("joint − independent, with intervals", fontsize=10)
        if not used:
            fig.tight_layout()
            fig.savefig(path, dpi=110)
            plt.close(fig)
            return None
        ax = axes[0][0]
    else:
        fig, ax = plt.subplots(figsize=(width_bars, 4.5))
    width = 0.8 / len(series)
    for j, (name, by) in enumerate(sorted(series.items())):
        labelled = False
        for i, lv in enumerate(levels):
            if by.get(lv):
                vals = by[lv]
                mean = sum(vals) / len(vals)
                std = (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5 if len(vals) > 1 else None
                bars = ax.bar(i + (j - (len(series) - 1) / 2) * width, mean, width, yerr=std, capsize=3,
                              color=plt.cm.tab10(j % 10), label=None if labelled else name,
                              hatch="//" if name.endswith("joint") else None)
                ax.bar_label(bars, fmt="%.3f", fontsize=7)
                labelled = True
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=8)
    ax.set_xticks(range(len(levels)))
    ax.set_xticklabels(levels)
    ax.set_xlabel("compression level")
    ax.set_ylabel("AP@0.5 (mean ± std where several seeds/runs)")
    ax.set_title("independent vs joint (JMMC) compression")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


LATENCY_SERIES = (("lat_1_ms", "ONNX Runtime, 1 thread", "o", "-"), ("lat_all_ms", "ONNX Runtime, all threads", "o", "--"),
                  ("ov_1_ms", "OpenVINO, 1 thread", "^", "-"), ("ov_all_ms", "OpenVINO, all threads", "^", "--"))


def latency_vs_macs(rows: list[dict], path: Path) -> str | None:
    """Host latency (y) vs MACs (x) of every whole-system file (pipeline rows), FP32 and int8 apart,
    per runtime and thread setting: whether pruning's MACs turn into time on this CPU."""
    pts = [r for r in rows if r.get("role") == "pipeline" and _num(r.get("macs"))]
    if not pts:
        return "no pipeline row with MACs"
    fig, ax = plt.subplots(figsize=(9, 5))
    drawn = 0
    for i, (key, label, marker, ls) in enumerate(LATENCY_SERIES):
        for prec, fill in (("fp32", True), ("int8", False)):
            sel = sorted((float(r["macs"]) / 1e6, _num(r[key])) for r in pts
                         if _num(r.get(key)) and ("int8" in str(r.get("precision")).lower()) == (prec == "int8"))
            if not sel:
                continue
            c = plt.cm.tab10(i)
            ax.scatter(*zip(*sel), marker=marker, color=c if fill else "none", edgecolor=c, s=40,
                       label=f"{label} ({'int8 QDQ' if prec == 'int8' else 'FP32'})")
            drawn += 1
    if not drawn:
        plt.close(fig)
        return "no pipeline row with a latency"
    ax.set_xlabel("MACs per frame (M)")
    ax.set_ylabel("median latency per frame (ms, log)")
    ax.set_yscale("log")
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))   # ms readable off the axis
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title("Latency vs MACs of the whole-system files (pruned variants move left)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None

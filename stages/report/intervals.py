"""Bootstrap 95 % intervals for the report's comparisons: collected from upstream metrics and the
JMMC table, drawn as whiskers.

Upstream (the quantize stage's ``metrics.json``, stages/quantize/steps.py), each ``{value, lo, hi}``:
  joint_vs_independent[cand]["ap_diff"]   AP(joint QAT) − AP(independent QAT chained), paired
  int8_vs_fp32[cand]["ap_diff"]           AP(best INT8, chosen on val) − AP(FP32), paired
  int8_vs_fp32[cand]["int8_ap" | "fp32_ap"] with ``int8_file`` / ``fp32_file``: AP intervals of files
The JMMC table adds its own (stages/report/jmmc.py).  ``collect`` gives
``{"joint": [...], "fp32": [...], "ap": {artifact name: (lo, hi)}}``; ``forest`` draws a list of
differences as points with horizontal whiskers (0 marked), ``diff_figure`` one such panel as a PNG.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from stages.report.jmmc import _stage, quantize_metrics  # noqa: E402


def _iv(d) -> dict | None:
    if isinstance(d, dict) and all(isinstance(d.get(k), (int, float)) for k in ("value", "lo", "hi")):
        return {"value": float(d["value"]), "lo": float(d["lo"]), "hi": float(d["hi"])}
    return None


def collect(stages, jmmc_table: dict | None = None) -> dict:
    out = {"joint": [], "fp32": [], "ap": {}}
    qm = quantize_metrics(_stage(stages, "quantize")) or {}
    for cand, j in sorted((qm.get("joint_vs_independent") or {}).items()):
        iv = _iv((j or {}).get("ap_diff"))
        if iv:
            out["joint"].append({"label": f"quantize {cand}: joint QAT − independent QAT chain", **iv})
    for cand, c in sorted((qm.get("int8_vs_fp32") or {}).items()):
        c = c or {}
        iv = _iv(c.get("ap_diff"))
        if iv:
            out["fp32"].append({"label": f"quantize {cand}: best INT8 ({c.get('int8', '?')}) − FP32", **iv})
        for k, f in (("int8_ap", "int8_file"), ("fp32_ap", "fp32_file")):
            iv = _iv(c.get(k))
            if iv and isinstance(c.get(f), str):
                out["ap"][f"quantize/{c[f]}"] = (iv["lo"], iv["hi"])
    for d in (jmmc_table or {}).get("diffs") or []:
        out["joint" if d["b"] == "independent" else "fp32"].append({"label": f"JMMC table: {d['label']}", **_iv(d)})
    for r in (jmmc_table or {}).get("rows") or []:
        if len(r["files"]) == 1 and r.get("ap_lo") is not None:
            out["ap"][r["files"][0]] = (r["ap_lo"], r["ap_hi"])
    return out


def forest(ax, items: list[dict], xlabel: str) -> None:
    ys = list(range(len(items)))[::-1]
    for y, d in zip(ys, items):
        color = "tab:green" if d["lo"] > 0 else "tab:red" if d["hi"] < 0 else "tab:gray"
        ax.errorbar(d["value"], y, xerr=[[d["value"] - d["lo"]], [d["hi"] - d["value"]]], fmt="o", color=color,
                    capsize=4)
        ax.annotate(f"{d['value']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]", (d["value"], y), fontsize=7,
                    xytext=(0, 6), textcoords="offset points", ha="center")
    ax.axvline(0, color="black", lw=0.8, ls="--")
    ax.set_yticks(ys)
    ax.set_yticklabels([d["label"] for d in items], fontsize=7)
    ax.set_ylim(-0.7, len(items) - 0.3)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)


def diff_figure(items: list[dict], path: Path, title: str) -> str | None:
    if not items:
        return "no upstream metrics with an interval for this comparison"
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.55 * len(items)))
    forest(ax, items, "ΔAP@0.5 (test), paired bootstrap 95 % interval")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None

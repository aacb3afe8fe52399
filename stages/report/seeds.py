"""Mean ± std over seeds: results rows that differ only by a ``_s<seed>`` name suffix.

The quantize stage names each seed's file of a grid cell ``<cell>_s<seed>.onnx`` (``quantize.ptq.seeds``);
where a config lists several seeds, the results table has one row per seed and this adds one line per
cell with the mean ± std (population std, n = seeds) of its accuracy columns.
"""
from __future__ import annotations

import html as _html
import math
import re

SEED = re.compile(r"^(?P<stem>.+)_s(?P<seed>\d+)(?P<ext>\.[A-Za-z0-9]+)?$")
KEYS = (("ap", "AP@0.5", 3), ("nme", "NME", 4), ("psnr", "PSNR dB", 2), ("ssim", "SSIM", 3))


def groups(rows: list[dict]) -> list[dict]:
    """[{artifact: "<stem>_s*<ext>", seeds: [...], n, <key>_mean, <key>_std}] for every set of >= 2 seeds."""
    by: dict[str, list[tuple[int, dict]]] = {}
    for r in rows:
        m = SEED.match(str(r.get("artifact") or ""))
        if m:
            by.setdefault(f"{m['stem']}_s*{m['ext'] or ''}", []).append((int(m["seed"]), r))
    out = []
    for name, members in sorted(by.items()):
        if len(members) < 2:
            continue
        g = {"artifact": name, "seeds": sorted(s for s, _ in members), "n": len(members)}
        for k, _, _ in KEYS:
            vals = [float(r[k]) for _, r in members if isinstance(r.get(k), (int, float)) and not math.isnan(r[k])]
            if vals:
                mean = sum(vals) / len(vals)
                g[f"{k}_mean"], g[f"{k}_std"] = mean, (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5
        out.append(g)
    return out


def _cells(g: dict) -> list[str]:
    return [g["artifact"], ", ".join(map(str, g["seeds"]))] + [
        f"{g[f'{k}_mean']:.{d}f} ± {g[f'{k}_std']:.{d}f}" if f"{k}_mean" in g else "–" for k, _, d in KEYS]


HEAD = ["artifact (seeds)", "seeds"] + [h for _, h, _ in KEYS]
CAPTION = "Mean ± std over the seeds of each cell (population std; one results row per seed above)."


def markdown(gs: list[dict]) -> str:
    if not gs:
        return "One seed per artifact in this run (nothing to aggregate).\n"
    lines = ["| " + " | ".join(HEAD) + " |", "|---|---|" + "---:|" * len(KEYS)]
    lines += ["| " + " | ".join(_cells(g)) + " |" for g in gs]
    return "\n".join(lines + ["", CAPTION]) + "\n"


def html(gs: list[dict]) -> str:
    if not gs:
        return ""
    e = _html.escape
    return ("<h2>Seeds: mean ± std</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in HEAD) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in _cells(g)) + "</tr>" for g in gs)
            + f"</table><p>{e(CAPTION)}</p>")

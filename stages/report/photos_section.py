"""The "Real photos (outside the training domain)" section, from the photos stage's own results.

Reads ``<run>/photos/metrics.json`` (stages/photos/steps.py: ``artifacts[*]`` with ``label``,
``precision`` and ``results[clean|degraded]`` = recall, precision, ap, n_ref_faces, tp, fp)
and copies ``photos/photos.png`` into the report folder.  Nothing is measured here.  A photos
stage that was skipped, did not run, or left no metrics.json gives ``{"skipped": reason}``.
"""
from __future__ import annotations

import html as _html
import json
import shutil
from pathlib import Path

TITLE = "Real photos (outside the training domain)"
FIGURE = "photos.png"
KEYS = ("recall", "precision", "ap")
WARNING = ("OUTSIDE THE TRAINING DOMAIN: the models are trained on synthetic faces only; these are real photographs "
           "bundled with scikit-image, and the reference faces are MTCNN detections (facenet-pytorch), not human "
           "labels. A sanity check, not a benchmark.")


def collect(stages, out: Path) -> dict:
    info = next((s for s in stages if s.name == "photos"), None)
    if info is None or info.manifest is None:
        return {"skipped": "the photos stage did not run in this run (`invoke stage photos`)"}
    if info.skipped:
        return {"skipped": info.skipped}
    p = info.dir / "metrics.json"
    try:
        m = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return {"skipped": f"{p}: unreadable ({type(e).__name__})"}
    arts = [a for a in m.get("artifacts") or [] if isinstance(a, dict)]
    if not arts:
        return {"skipped": "photos/metrics.json lists no artifact"}
    conds = list(dict.fromkeys(c for a in arts for c in (a.get("results") or {})))
    rows = []
    for a in arts:
        res = a.get("results") or {}
        rows.append({"artifact": a.get("artifact"), "label": a.get("label") or a.get("artifact"),
                     "precision_type": a.get("precision"),
                     **{f"{c}_{k}": (res.get(c) or {}).get(k) for c in conds for k in KEYS + ("tp", "fp")}})
    n_ref = {c: next(((a.get("results") or {}).get(c, {}).get("n_ref_faces") for a in arts
                      if c in (a.get("results") or {})), None) for c in conds}
    fig = None
    if (info.dir / FIGURE).is_file():
        shutil.copyfile(info.dir / FIGURE, out / FIGURE)
        fig = FIGURE
    ref = m.get("reference") or {}
    return {"note": m.get("note") or WARNING, "conditions": conds, "n_ref_faces": n_ref, "rows": rows, "figure": fig,
            "n_photos": len(ref.get("photos") or {}) or None, "labeller": ref.get("labeller"),
            "score_thr": (m.get("matching") or {}).get("score_thr")}


def _f(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def _table(p: dict) -> tuple[list[str], list[list[str]]]:
    head = ["artifact", "precision"] + [f"{c} {k}" for c in p["conditions"] for k in ("recall", "precision", "AP")]
    body = [[str(r["label"]), str(r["precision_type"] or "–")] + [_f(r.get(f"{c}_{k}")) for c in p["conditions"]
                                                                   for k in KEYS] for r in p["rows"]]
    return head, body


def _caption(p: dict) -> str:
    faces = ", ".join(f"{c}: {n}" for c, n in p["n_ref_faces"].items())
    return (f"{p['n_photos'] or '?'} photos, reference faces ({faces}) by {p.get('labeller') or 'MTCNN'}; recall "
            f"and precision at score ≥ {p.get('score_thr')}, AP over every detection; `degraded` = the dataset's own "
            "degradation applied to the photo.")


def markdown(p: dict | None, figure_link: str | None = None) -> str:
    lines = [f"## {TITLE}", ""]
    if not p or p.get("skipped"):
        return "\n".join(lines + [f"_Not in this run: {(p or {}).get('skipped', 'not collected')}._", ""])
    head, body = _table(p)
    lines += [f"**{p.get('note') or WARNING}**", "", "| " + " | ".join(head) + " |",
              "|---|---|" + "---:|" * (len(head) - 2)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]
    lines += ["", _caption(p), ""]
    if p.get("figure") and figure_link:
        lines += [f"![{TITLE}]({figure_link})", ""]
    return "\n".join(lines)


def html(p: dict | None, img) -> str:
    e = _html.escape
    parts = [f"<h2>{e(TITLE)}</h2>"]
    if not p or p.get("skipped"):
        return parts[0] + f"<p class=skip>Not in this run: {e((p or {}).get('skipped', 'not collected'))}</p>"
    head, body = _table(p)
    parts.append(f"<p class=skip><b>{e(p.get('note') or WARNING)}</b></p><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head)
                 + "</tr>" + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in body)
                 + f"</table><p>{e(_caption(p))}</p>")
    if p.get("figure"):
        parts.append(img(p["figure"]))
    return "\n".join(parts)

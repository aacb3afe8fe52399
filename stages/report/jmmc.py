"""The JMMC table: the pruned + INT8 chain next to the FP32 chain and its independent twin.

Rows (``plan``), resolved from the quantize stage's ``metrics.json`` by candidate *role*
(``candidates[cand]["role"]``, or the ``role`` of its ``quantize.candidates`` entry in the
manifest's config):

* ``fp32``         the FP32 chain, ``train/pipeline.onnx``;
* ``jmmc``         the candidate with role ``jmmc`` (pruned jointly), INT8 by joint QAT: its
                   ``joint_qat`` pipeline ONNX (row model ``pipeline``, method ``joint_qat``);
* ``independent``  the candidate with role ``independent`` (pruned independently), each model
                   QAT'd alone, then chained: its three ``qat(...)`` ONNX files (enhancer, denoiser,
                   detector) run in series, as quantize's ``independent_qat_chained`` row does;
* ``jmmc_fp32`` / ``independent_fp32``  the pruned FP32 pipelines they came from, when present:
                   ``<candidate dir>/pipeline.onnx`` (the prune variant's), else the candidate's
                   FP32 export in quantize (row method ``fp32``, model ``pipeline``).

Every system is evaluated once, on the test split, by the report's measure path with the
per-image detections kept (``measure.evaluate_artifact(..., keep_dets=True)`` for the single
pipelines, ``measure.evaluate_chain(..., keep_dets=True)`` for the twin); AP carries its
bootstrap 95 % interval (``shared.metrics.bootstrap.ap_interval``) and the two comparisons
joint − independent and JMMC − FP32 a paired one (``ap_diff_interval``: the same resampled
test images for both systems).  Costs and latency are the results rows' (a chain: the sum of
its three models').  Without a ``jmmc`` candidate the table is one line saying so.
"""
from __future__ import annotations

import html as _html
import json
from pathlib import Path

from shared.metrics.bootstrap import ap_diff_interval, ap_interval
from stages.report.table import fmt

NO_JMMC = "no JMMC candidate in quantize.candidates (set role: jmmc)"
NO_INDEP = "no independent candidate in quantize.candidates (set role: independent)"
PARTS = ("enhancer", "denoiser", "detector")
LABELS = {"fp32": "FP32 chain", "jmmc": "JMMC chain (pruned jointly + joint QAT, INT8)",
          "independent": "independent twin (pruned independently + QAT per model, chained)",
          "jmmc_fp32": "pruned FP32 (JMMC's source)", "independent_fp32": "pruned FP32 (twin's source)"}
DIFFS = (("joint − independent", "jmmc", "independent"), ("JMMC − FP32", "jmmc", "fp32"))
SPLITS = ("Choices (the PTQ cell QAT starts from, pruning budgets, loss weights, the best INT8 variant) were made "
          "on the validation split; every number in this table is from the test split.")


def _stage(stages, name):
    return next((s for s in stages if s.name == name), None)


def quantize_metrics(q) -> dict | None:
    if q is None or q.manifest is None or not (q.dir / "metrics.json").is_file():
        return None
    try:
        return json.loads((q.dir / "metrics.json").read_text())
    except json.JSONDecodeError:
        return None      # records.discover already refuses a corrupt one, naming the file


def roles(qm: dict, manifest: dict | None) -> dict[str, str]:
    """{role: candidate name} (the first candidate of each role)."""
    out = {}
    for cand, info in (qm.get("candidates") or {}).items():
        if isinstance(info, dict) and info.get("role"):
            out.setdefault(str(info["role"]), cand)
    entries = (((manifest or {}).get("config") or {}).get("quantize") or {}).get("candidates") or []
    for e in entries:
        if isinstance(e, dict) and e.get("role") and "stage" in e:
            out.setdefault(str(e["role"]), f"{e['stage']}-{e.get('kind', 'fp32')}")
    return out


def _row(qm, cand, model, pred):
    return next((r for r in qm.get("rows") or [] if r.get("candidate") == cand and r.get("model") == model
                 and pred(str(r.get("method", ""))) and isinstance(r.get("onnx_file"), str)), None)


def _source(qm, cand, arts) -> tuple[object, str] | None:
    """The pruned FP32 pipeline a candidate came from: (artifact, where)."""
    info = (qm.get("candidates") or {}).get(cand) or {}
    if info.get("dir"):
        a = arts.get(f"{Path(info['dir']).as_posix().strip('/')}/pipeline.onnx")
        if a is not None:
            return a, a.name
    r = _row(qm, cand, "pipeline", lambda m: m == "fp32")
    a = arts.get(f"quantize/{r['onnx_file']}") if r else None
    return (a, a.name) if a is not None else None


def plan(stages) -> dict:
    """{"systems": [{key, label, kind: pipeline|chain, artifacts: [Artifact], candidate}], "notes", "message",
    "roles"}; ``message`` set (and no systems) when the table cannot be made."""
    arts = {a.name: a for s in stages for a in s.artifacts if a.external is None}
    q = _stage(stages, "quantize")
    qm = quantize_metrics(q)
    if qm is None:
        why = q.skipped if q is not None and q.skipped else "quantize/metrics.json missing"
        return {"systems": [], "notes": [], "roles": {}, "message": f"no quantize results ({why})"}
    rl = roles(qm, q.manifest)
    if "jmmc" not in rl:
        return {"systems": [], "notes": [], "roles": rl, "message": NO_JMMC}
    systems, notes = [], []

    def add(key, kind, artifacts, cand=None):
        systems.append({"key": key, "label": LABELS[key], "kind": kind, "artifacts": artifacts, "candidate": cand})

    if "train/pipeline.onnx" in arts:
        add("fp32", "pipeline", [arts["train/pipeline.onnx"]])
    else:
        notes.append("FP32 chain: no train/pipeline.onnx in this run")
    jm = rl["jmmc"]
    r = _row(qm, jm, "pipeline", lambda m: m == "joint_qat")
    a = arts.get(f"quantize/{r['onnx_file']}") if r else None
    if a is None:
        return {"systems": [], "notes": notes, "roles": rl,
                "message": f"JMMC candidate {jm}: no joint_qat pipeline ONNX among quantize's rows (quantize.joint "
                           "enabled and pipeline in quantize.models?)"}
    add("jmmc", "pipeline", [a], jm)
    ind = rl.get("independent")
    if ind is None:
        notes.append(NO_INDEP)
    else:
        files = [_row(qm, ind, p, lambda m: m.startswith("qat")) for p in PARTS]
        parts = [arts.get(f"quantize/{f['onnx_file']}") if f else None for f in files]
        if all(parts):
            add("independent", "chain", parts, ind)
        else:
            notes.append(f"independent candidate {ind}: missing QAT ONNX of "
                         f"{', '.join(p for p, x in zip(PARTS, parts) if x is None)} (quantize.qat enabled, and "
                         "enhancer, denoiser, detector in quantize.models?)")
    for key, cand in (("jmmc_fp32", jm), ("independent_fp32", ind)):
        src = _source(qm, cand, arts) if cand else None
        if src:
            add(key, "pipeline", [src[0]], cand)
    return {"systems": systems, "notes": notes, "roles": rl, "message": None}


def keep(p: dict) -> set[str]:
    """Artifact names the report evaluates with their detections kept (the single pipelines)."""
    return {s["artifacts"][0].name for s in p["systems"] if s["kind"] == "pipeline"}


def _sum(rows, key):
    vals = [r.get(key) for r in rows]
    return None if any(v is None for v in vals) else sum(vals)


def build(p: dict, rows: list[dict], measured: dict[str, dict], test, proto, n_boot: int, seed: int,
          log=None) -> dict:
    """The table as data (no detections in it): rows, diffs, notes, message.  ``measured``:
    artifact name -> metrics with ``dets`` from the report's evaluation of ``keep(p)``."""
    from stages.report.measure import evaluate_chain
    by = {r["artifact"]: r for r in rows}
    out = {"message": p["message"], "notes": list(p["notes"]), "roles": p["roles"], "rows": [], "diffs": [],
           "split": "test", "selected_on": "val", "n_boot": n_boot}
    if not p["message"] and not len(test):
        out["message"] = "the test split is empty: nothing to measure the JMMC table on"
    if out["message"]:
        return out
    dets, gts = {}, None
    for s in p["systems"]:
        files = [a.name for a in s["artifacts"]]
        if s["kind"] == "pipeline":
            m = measured.get(files[0]) or {}
        else:
            m = evaluate_chain(dict(zip(PARTS, s["artifacts"])), test, proto, log, keep_dets=True)
        parts = [by.get(f, {}) for f in files]
        if not m.get("dets"):
            out["notes"].append(f"{s['label']}: not evaluated ({m.get('source', 'no test images')})")
            continue
        dets[s["key"]] = m["dets"]
        gts = test.gts(len(m["dets"]))
        iv = ap_interval(m["dets"], gts, n_boot=n_boot, seed=seed, iou_thr=proto.iou_thr)
        out["rows"].append({"key": s["key"], "system": s["label"], "candidate": s["candidate"], "files": files,
                            "precision": "/".join(dict.fromkeys(str(r.get("precision")) for r in parts)),
                            "ap": m.get("ap"), "ap_lo": iv["lo"], "ap_hi": iv["hi"], "nme": m.get("nme"),
                            "psnr": m.get("psnr"), "macs": _sum(parts, "macs"),
                            "weight_bytes": _sum(parts, "weight_bytes"), "lat_1_ms": _sum(parts, "lat_1_ms"),
                            "lat_all_ms": _sum(parts, "lat_all_ms"), "n_images": iv["n_images"]})
    out["n_images"] = len(gts) if gts is not None else 0
    for label, a, b in DIFFS:
        if a in dets and b in dets:
            d = ap_diff_interval(dets[a], dets[b], gts, n_boot=n_boot, seed=seed, iou_thr=proto.iou_thr)
            out["diffs"].append({"label": label, "a": a, "b": b, **d})
            if log:
                log.info("JMMC table: %s AP = %.4f [%.4f, %.4f] (test, %d images)", label, d["value"], d["lo"],
                         d["hi"], d["n_images"])
    return out


COLUMNS = (("system", "system", "s"), ("precision", "precision", "s"), ("ap", "AP@0.5 [95 % CI]", "ci"),
           ("nme", "NME", ".4f"), ("psnr", "PSNR dB", ".2f"), ("macs", "MACs", "M"),
           ("weight_bytes", "weight bytes", "k"), ("lat_1_ms", "ms 1T", ".2f"), ("lat_all_ms", "ms allT", ".2f"),
           ("files", "files", "files"))


def _ratio(r, ref, k):
    return f" ({r[k] / ref[k]:.2f}×)" if ref and ref.get(k) and r.get(k) is not None and r is not ref else ""


def _cells(r: dict, ref: dict | None) -> list[str]:
    cells = []
    for k, _, spec in COLUMNS:
        if spec == "ci":
            c = "–" if r.get("ap") is None else f"{r['ap']:.3f} [{r['ap_lo']:.3f}, {r['ap_hi']:.3f}]"
        elif spec == "files":
            c = " + ".join(r["files"])
        else:
            c = fmt(r.get(k), spec) + (_ratio(r, ref, k) if k in ("macs", "weight_bytes") else "")
        cells.append(c)
    return cells


def diff_lines(j: dict) -> list[str]:
    return [f"{d['label']} AP = {d['value']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]" for d in j.get("diffs") or []]


def _caption(j: dict) -> str:
    return (f"{SPLITS} Test images: {j.get('n_images', 0)}; intervals: percentile bootstrap over test images, "
            f"{j['n_boot']} resamples, 95 %; differences paired (the same resampled images for both systems). "
            "MACs and weight bytes in brackets: × the FP32 chain. Latency: ONNX Runtime on this host's CPU, median "
            "ms with 1 thread / all threads (a chain: the sum of its three models').")


def markdown(j: dict | None) -> str:
    if not j:
        return "_not made_\n"
    if j.get("message"):
        return f"_{j['message']}_\n"
    ref = next((r for r in j["rows"] if r["key"] == "fp32"), None)
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |",
             "|" + "|".join("---" if s in ("s", "files") else "---:" for _, _, s in COLUMNS) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(r, ref)) + " |" for r in j["rows"]]
    lines += [""] + [f"- **{x}**" for x in diff_lines(j)] + ["", _caption(j)]
    lines += [f"- {n}" for n in j.get("notes") or []]
    return "\n".join(lines) + "\n"


def html(j: dict | None) -> str:
    e = _html.escape
    if not j or j.get("message"):
        return f"<p class=skip>{e((j or {}).get('message') or 'not made')}</p>"
    ref = next((r for r in j["rows"] if r["key"] == "fp32"), None)
    head = "".join(f"<th>{e(h)}</th>" for _, h, _ in COLUMNS)
    body = "".join("<tr>" + "".join(f'<td{"" if s in ("s", "files") else " class=n"}>{e(c)}</td>'
                                    for (_, _, s), c in zip(COLUMNS, _cells(r, ref))) + "</tr>" for r in j["rows"])
    diffs = "".join(f"<li><b>{e(x)}</b></li>" for x in diff_lines(j))
    notes = "".join(f"<li class=skip>{e(n)}</li>" for n in j.get("notes") or [])
    return f"<table><tr>{head}</tr>{body}</table><ul>{diffs}</ul><p>{e(_caption(j))}</p>" + (
        f"<ul>{notes}</ul>" if notes else "")

"""Metrics of one quantized unit by the shared protocol (shared/evaluation.py).

Detection units (pipeline, detector): AP@0.5, NME, top-box IoU, missed faces on the
eval variant; restoration units (enhancer, denoiser): PSNR/SSIM vs the clean image.
``gap(a, b)`` is the sim-vs-ONNX difference per metric, reported next to both.

``evaluate(..., return_dets=True)`` also hands back the decoded detections per image
(None for restoration units), so a comparison can bootstrap its interval from the same
run that gave the reported figure (``ap_diff`` / ``ap_interval``: images resampled,
``shared.metrics.bootstrap``) instead of detecting a second time.
"""
from __future__ import annotations

import math

import numpy as np

from shared import units
from shared.evaluation import accuracy_mode, as_fn, detect, evaluate_restoration, ort_session
from shared.metrics.detection import evaluate_detections

KEYS = ("ap", "nme", "top_box_iou", "missed", "psnr", "ssim")
DETECTION = ("pipeline", "detector")


def evaluate(system, name: str, split, proto, return_dets: bool = False):
    """Metrics dict (``KEYS``) of ``system`` as unit ``name`` on ``split``; with ``return_dets``
    a tuple (metrics, per-image detections or None)."""
    dets = None
    if name in DETECTION:   # shared.evaluation.evaluate_detection, keeping the detections
        variant = proto.variant
        dets = detect(system, split, proto, variant, input_range=units.input_range(name))
        m = evaluate_detections(dets, split.gts(len(dets)), proto.iou_thr)
    else:
        m = evaluate_restoration(system, split, units.eval_variant(name, proto.variant), "0", proto.limit,
                                 proto.batch)
    m = {k: m[k] for k in KEYS if k in m}
    return (m, dets) if return_dets else m


def ap_interval(dets, split, proto, n_boot: int, seed: int) -> dict:
    """AP with its bootstrap 95 % interval over the split's images: {value, lo, hi, n_boot, n_images}."""
    from shared.metrics.bootstrap import ap_interval as boot
    return boot(dets, split.gts(len(dets)), n_boot=n_boot, seed=seed, iou_thr=proto.iou_thr)


def ap_diff(dets_a, dets_b, split, proto, n_boot: int, seed: int) -> dict:
    """AP(a) - AP(b) on the same images with its paired bootstrap 95 % interval."""
    from shared.metrics.bootstrap import ap_diff_interval
    if len(dets_a) != len(dets_b):
        raise ValueError(f"ap_diff: {len(dets_a)} vs {len(dets_b)} images (the same images are needed)")
    return ap_diff_interval(dets_a, dets_b, split.gts(len(dets_a)), n_boot=n_boot, seed=seed,
                            iou_thr=proto.iou_thr)


def dither(x: np.ndarray, fraction: float, step: float, rng) -> np.ndarray:
    """``x`` with a random ``fraction`` of its values moved up or down by ``step`` (one grey level of the
    unit's input range), kept inside [0, 255 * step]."""
    moved = rng.random(x.shape) < fraction
    signs = rng.choice(np.array([-1.0, 1.0], np.float32), x.shape)
    return np.clip(x + moved * signs * np.float32(step), 0, np.float32(255 * step)).astype(np.float32)


def ap_resolution(system, name: str, split, proto, draws: int, fraction: float = 0.004, seed: int = 0) -> dict:
    """How finely AP on ``split`` resolves ``system``: its AP over ``draws`` passes, each with one grey
    level added or taken on a random ``fraction`` of the input values (:func:`dither`). Invisible to an
    FP32 chain (the demo's moves by 0.01 point); an int8 chain re-draws its rounding and its AP moves
    by about a point, which is what two implementations of the same int8 graph can differ by
    (docs/decisions.md, session 12). {draws, fraction, aps, mean, sd, spread (max - min)}."""
    fn, rng = as_fn(system), np.random.default_rng(seed)
    step = units.input_range(name) / 255
    aps = np.asarray([evaluate(lambda x: fn(dither(x, fraction, step, rng)), name, split, proto)["ap"]
                      for _ in range(draws)])
    return {"draws": draws, "fraction": fraction, "aps": [float(a) for a in aps], "mean": float(aps.mean()),
            "sd": float(aps.std(ddof=1)) if draws > 1 else 0.0, "spread": float(aps.max() - aps.min())}


def gap(sim: dict, onnx: dict) -> dict:
    out = {}
    for k, v in sim.items():
        w = onnx.get(k)
        if isinstance(v, (int, float)) and isinstance(w, (int, float)) and not (math.isnan(v) or math.isnan(w)):
            out[k] = float(w) - float(v)
    return out


def max_gap(g: dict) -> float:
    """Largest gap on a comparable scale (AP/IoU/SSIM in [0,1], PSNR in dB / 100)."""
    scaled = [abs(v) / (100.0 if k == "psnr" else 1.0) for k, v in g.items() if k != "missed"]
    return max(scaled) if scaled else 0.0


def gap_summary(rows: list[dict], tol: float = 0.005) -> dict:
    """Over the INT8 detection rows' ``gap_ap`` (AP of the ONNX file minus its simulation, paired 95 %
    interval): how many files, the largest gap, how many exceed ``tol`` (0.5 point), which ones have an
    interval that excludes 0 (a gap the test split resolves), and the intervals' median half-width;
    ``by_model``: files, largest gap and files over ``tol`` per unit (detector, pipeline); ``beyond``:
    each file over ``tol`` that has an ``ap_resolution`` (:func:`resolve_gaps`), with its gap, the AP's sd
    and spread under invisible input changes, ``within_spread`` (|gap| <= that spread), ``unfused_gap``
    (the file's unfused session minus the sim; None where the file was measured unfused) and
    ``ort_kernel_gap`` (the file minus the sim computing with ONNX Runtime's kernels, None where not
    measured); ``ort_kernels``: :func:`kernel_summary`."""
    g = _gapped(rows)
    if not g:
        return {}
    half = sorted((x["hi"] - x["lo"]) / 2 for _, x in g)
    by = {}
    for r, x in g:
        b = by.setdefault(r["model"], {"files": 0, "max_abs": 0.0, "over_tol": 0})
        b["files"] += 1
        b["max_abs"] = max(b["max_abs"], abs(x["value"]))
        b["over_tol"] += abs(x["value"]) > tol
    return {"files": len(g), "tol": tol, "max_abs": max(abs(x["value"]) for _, x in g),
            "over_tol": sum(abs(x["value"]) > tol for _, x in g),
            "resolved": [f"{r['candidate']}/{r['model']}/{r['method']}" for r, x in g if x["lo"] > 0 or x["hi"] < 0],
            "median_half_width": half[len(half) // 2], "n_images": g[0][1]["n_images"], "by_model": by,
            "beyond": [{"file": r["onnx_file"], "gap": x["value"], "sd": r["ap_resolution"]["sd"],
                        "spread": r["ap_resolution"]["spread"],
                        "within_spread": abs(x["value"]) <= r["ap_resolution"]["spread"],
                        "unfused_gap": (r.get("ap_unfused") or {}).get("gap"),
                        "ort_kernel_gap": ((r.get("sim_ort") or {}).get("gap_ap") or {}).get("value")}
                       for r, x in g if abs(x["value"]) > tol and r.get("ap_resolution")],
            "ort_kernels": kernel_summary(rows, tol)}


def kernel_summary(rows: list[dict], tol: float = 0.005) -> dict:
    """Over the INT8 rows measured against the simulation computing with ONNX Runtime's kernels
    (``sim_ort``, stages/quantize/ort_kernels.py): files, how many the kernels cover exactly (no op left to
    the sim's float math), the largest |file - that sim| AP gap over all and over the exact ones, files
    over ``tol``, and each file's gap, exactness and float ops left."""
    g = [(r, r["sim_ort"]) for r in rows if r.get("sim_ort") and r.get("bits") != "FP32"]
    if not g:
        return {}
    exact = [abs(t["gap_ap"]["value"]) for _, t in g if t["coverage"]["exact"]]
    return {"files": len(g), "exact_files": len(exact), "max_abs": max(abs(t["gap_ap"]["value"]) for _, t in g),
            "max_abs_exact": max(exact) if exact else None,
            "over_tol": sum(abs(t["gap_ap"]["value"]) > tol for _, t in g),
            "per_file": [{"file": r["onnx_file"], "gap": t["gap_ap"]["value"], "exact": t["coverage"]["exact"],
                          "float_ops": t["coverage"]["float_ops"]} for r, t in g]}


def resolve_gaps(rows: list[dict], out, split, proto, draws: int, tol: float = 0.005) -> None:
    """For every INT8 detection row whose file is more than ``tol`` AP from its simulation: is that gap
    more than the test split resolves of that file, and more than the file's own unfused session gives?

    * ``ap_resolution``: :func:`ap_resolution` of the ONNX file, ``draws`` passes;
    * ``ap_unfused``: {ap, gap}: the file in the ``reference`` session (Q/DQ kept, float convs and adds:
      the file's int8 semantics by construction, what the fused kernels must match) and its gap to the
      sim; only for files measured fused (``accuracy_mode`` ``exact``): the others are measured unfused.

    ``draws`` 0: nothing."""
    for r, g in _gapped(rows) if draws else []:
        f = out / str(r.get("onnx_file"))
        if abs(g["value"]) > tol and f.is_file():
            mode = accuracy_mode(f)
            r["ap_resolution"] = ap_resolution(ort_session(f, mode), r["model"], split, proto, draws)
            if mode == "exact":
                ap = evaluate(ort_session(f, "reference"), r["model"], split, proto)["ap"]
                r["ap_unfused"] = {"ap": ap, "gap": ap - r["sim"]["ap"]}


def _gapped(rows: list[dict]) -> list[tuple[dict, dict]]:
    """(row, its ``gap_ap``) of every INT8 row that has one (the detection units' files)."""
    return [(r, r["gap_ap"]) for r in rows if r.get("gap_ap") and r.get("bits") != "FP32"]

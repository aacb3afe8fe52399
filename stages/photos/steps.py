"""``run(ctx)``: the FP32 and compressed pipelines on real photographs, OUTSIDE the training domain.

Outputs (``<run>/photos/``):
  metrics.json   per artifact and condition (clean / degraded): n_ref_faces, tp, fp, fn, recall, precision
                 (at photos.score_thr), AP, and per photo the reference boxes and the detections
                 (x1, y1, x2, y2, score at the network input; the best MAX_LISTED at the operating point)
  photos.png     the grid: MTCNN reference faces vs each artifact's detections, per photo and condition

Each photo is letterboxed to the pipeline's static ONNX input size; ``degraded`` runs it through the
dataset stage's own ``degrade`` (dataset.degradation, variant eval.variant, one draw per photo from
the run seed).  Reference faces come from facenet-pytorch's MTCNN on the photo at full resolution.
Every file runs through ``shared.evaluation.ort_session`` (QDQ files at their int8 semantics) and is
decoded like cv2.FaceDetectorYN (eval.score_thr, eval.nms_iou).
"""
from __future__ import annotations

import json
import time

import numpy as np

from shared.data import to_float
from shared.evaluation import Protocol, ort_session
from shared.ort_runtime import describe
from shared.models import OUTPUT_NAMES, decode
from stages.photos import artifacts as artlib
from stages.photos import figure
from stages.photos.photos import (PhotoError, letterbox, load_mtcnn, load_photos, mtcnn_faces,
                                  reference_boxes)
from stages.photos.score import score

NOTE = ("OUTSIDE THE TRAINING DOMAIN: real photographs bundled with scikit-image (the models are trained on "
        "synthetic faces only); reference faces are facenet-pytorch MTCNN detections, not human labels, and "
        "its box convention differs from the training labels'")
MAX_LISTED = 50     # detections listed per photo in metrics.json (tp + fp counts them all)


def input_size(sess, fallback) -> tuple[int, int]:
    """(height, width) of the ONNX input [1, 3, H, W]; ``fallback`` where a dimension is symbolic."""
    shape = sess.get_inputs()[0].shape
    if len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[2:]):
        return int(shape[2]), int(shape[3])
    return int(fallback[0]), int(fallback[1])


def _r(a, nd=1) -> list:
    return np.round(np.asarray(a, np.float64), nd).tolist()


class Samples:
    """Photos fitted to one input size, per condition (BGR uint8, reference boxes), built once per size."""

    def __init__(self, photos, cfg: dict, conditions: list[str], variant: str, degradation: dict, seed: int):
        self.photos, self.cfg, self.conditions = photos, cfg, conditions
        self.variant, self.degradation, self.seed = variant, degradation, seed
        self.drawn: dict[str, dict] = {}
        self._by_size: dict[tuple, list[dict]] = {}

    def at(self, h: int, w: int) -> list[dict]:
        if (h, w) not in self._by_size:
            from stages.dataset.degrade import degrade
            out = []
            ref_cfg = self.cfg["reference"]
            for i, p in enumerate(self.photos):
                clean, fit = letterbox(np.ascontiguousarray(p.rgb[..., ::-1]), h, w)   # BGR, as cv2 reads
                ref = reference_boxes(p, fit, ref_cfg["min_prob"], ref_cfg["min_face_px"])
                for cond in self.conditions:
                    img = clean
                    if cond == "degraded":
                        variants, drawn = degrade(clean, self.degradation, np.random.default_rng([self.seed, i, h, w]))
                        img = variants[self.variant]
                        self.drawn.setdefault(p.name, drawn)
                    out.append({"photo": p.name, "condition": cond, "image": img, "ref": ref})
            self._by_size[(h, w)] = out
        return self._by_size[(h, w)]


def run_artifact(art, samples: Samples, proto: Protocol, fallback_size) -> tuple[dict, list[np.ndarray]]:
    sess = ort_session(art.path)   # shared.evaluation.accuracy_mode: QDQ files at their written int8 semantics
    outs = [o.name for o in sess.get_outputs()]
    if set(outs) != set(OUTPUT_NAMES):
        raise RuntimeError(f"{art.path}: outputs {outs} are not YuNet's {list(OUTPUT_NAMES)} (not a pipeline)")
    h, w = input_size(sess, fallback_size)
    name = sess.get_inputs()[0].name
    dets = []
    for s in samples.at(h, w):
        y = sess.run(list(OUTPUT_NAMES), {name: to_float(s["image"][None])})
        dets.append(decode(y, (w, h), proto.score_thr, proto.nms_iou)[0])
    info = {"artifact": art.name, "kind": art.kind, "label": art.label,
            "precision": art.precision if art.precision == "fp32" else f"{art.precision} (QDQ)",
            **describe(sess),
            "input_size": [h, w]}
    return info, dets


def run(ctx) -> dict:
    cfg, log = ctx.cfg, ctx.log
    train_m = ctx.input_manifests.get("train") or {}
    if train_m.get("skipped"):
        return {"skipped": f"needs the train stage's pipeline.onnx (train was skipped: {train_m['skipped']})", "metrics": {}}
    t0 = time.time()
    arts, not_run = artlib.select(ctx.inputs, ctx.input_manifests, cfg)
    if not arts:
        return {"skipped": "needs a pipeline ONNX file from train, prune or quantize: " + json.dumps(not_run), "metrics": {}}
    proto = Protocol.from_config(ctx.config)
    conditions = list(dict.fromkeys(cfg["conditions"]))
    if proto.variant == "0" and "degraded" in conditions:
        conditions.remove("degraded")
        log.info("eval.variant is the clean image: the degraded condition would repeat the clean one")
    try:
        photos = load_photos(cfg["images"], cfg["lfw_faces"], cfg["lfw_tile"])
        mtcnn = load_mtcnn(cfg["threads"])
    except PhotoError as e:
        return {"skipped": str(e), "metrics": {}}
    for p in photos:
        p.ref = mtcnn_faces(mtcnn, p.rgb)
        log.info("%s %s: MTCNN %d face(s) (%d with prob >= %.2f)", p.name, "x".join(map(str, p.rgb.shape[:2])),
                 len(p.ref), int((p.ref[:, 4] >= cfg["reference"]["min_prob"]).sum()), cfg["reference"]["min_prob"])
    t_ref = time.time() - t0
    degradation = (ctx.config.get("dataset") or {}).get("degradation")
    if "degraded" in conditions and not degradation:
        raise RuntimeError("photos.conditions has degraded but the config has no dataset.degradation")
    samples = Samples(photos, cfg, conditions, proto.variant, degradation, ctx.seed)
    fallback = (ctx.config.get("dataset") or {}).get("size") or [256, 256]

    results, columns, per_sample = [], [], {}
    for art in arts:
        t1 = time.time()
        info, dets = run_artifact(art, samples, proto, fallback)
        h, w = info["input_size"]
        rows = samples.at(h, w)
        by_cond = {}
        for cond in conditions:
            idx = [i for i, s in enumerate(rows) if s["condition"] == cond]
            sc = score([dets[i] for i in idx], [rows[i]["ref"] for i in idx], cfg["score_thr"], proto.iou_thr)
            per_photo = {}
            for k, i in enumerate(idx):
                d = dets[i][dets[i][:, -1] >= cfg["score_thr"]][:MAX_LISTED]     # decode sorts by score
                per_photo[rows[i]["photo"]] = {**sc["per_photo"][k], "ref": _r(rows[i]["ref"]),
                                               "dets": [_r(x[:4]) + [round(float(x[-1]), 4)] for x in d]}
                per_sample.setdefault((h, w, i), {})[art.name] = (dets[i], sc["per_photo"][k])
            by_cond[cond] = {**{k: v for k, v in sc.items() if k != "per_photo"}, "per_photo": per_photo}
        results.append({**info, "seconds": round(time.time() - t1, 2), "results": by_cond})
        columns.append({"name": art.name, "label": f"{art.label} [{info['precision']}]", "size": (h, w),
                        "summary": {c: by_cond[c] for c in conditions}})
        log.info("%s (%s, %dx%d): %s", art.name, info["precision"], h, w, "; ".join(
            f"{c} recall {_p(s['recall'])} precision {_p(s['precision'])} AP {_p(s['ap'])} ({s['tp']} tp, {s['fp']} fp of "
            f"{s['n_ref_faces']} faces)" for c, s in by_cond.items()))

    # the figure: one row per (photo, condition) at the first artifact's input size (all share it in a run)
    h, w = columns[0]["size"]
    grid_rows = []
    for i, s in enumerate(samples.at(h, w)):
        cols = {c["name"]: per_sample[(h, w, i)][c["name"]] for c in columns if (h, w, i) in per_sample
                and c["name"] in per_sample[(h, w, i)]}
        grid_rows.append({"label": f"{s['photo']} / {s['condition']}" + (f" ({proto.variant})" if s["condition"] == "degraded" else ""),
                          "image": s["image"], "ref": s["ref"],
                          "dets": {k: v[0] for k, v in cols.items()}, "per": {k: v[1] for k, v in cols.items()}})
    shown = [c for c in columns if c["size"] == (h, w)]
    figure.save_grid(grid_rows, shown, ctx.out / "photos.png", cfg["score_thr"])

    import facenet_pytorch
    from importlib import metadata
    n_ref = {c: results[0]["results"][c]["n_ref_faces"] for c in conditions}
    metrics = {
        "note": NOTE, "outside_training_domain": True,
        "reference": {"labeller": f"facenet-pytorch {metadata.version('facenet-pytorch')} MTCNN (pretrained P/R/O-Net "
                                  f"weights of its wheel, {facenet_pytorch.__name__}/data)",
                      "min_prob": cfg["reference"]["min_prob"], "min_face_px": cfg["reference"]["min_face_px"],
                      "photos": {p.name: {"source": p.source, "size": list(p.rgb.shape[:2]),
                                          "mtcnn": [_r(r[:4]) + [round(float(r[4]), 4)] for r in p.ref]} for p in photos},
                      "seconds": round(t_ref, 2)},
        "conditions": {c: ("the photo as shipped, letterboxed" if c == "clean" else
                           {"function": "stages.dataset.degrade.degrade", "variant": proto.variant,
                            "params": degradation, "drawn": samples.drawn}) for c in conditions},
        "matching": {"iou_thr": proto.iou_thr, "score_thr": cfg["score_thr"], "decode_score_thr": proto.score_thr,
                     "nms_iou": proto.nms_iou,
                     "rule": "shared.metrics.detection.match_detections (highest score first, best unmatched reference)"},
        "n_ref_faces": n_ref, "artifacts": results, "not_run": not_run,
    }
    (ctx.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    summary = {r["artifact"]: {c: {k: r["results"][c][k] for k in ("recall", "precision", "ap", "tp", "fp")}
                               for c in conditions} for r in results}
    return {"metrics": {"note": NOTE, "outside_training_domain": True, "n_photos": len(photos), "n_ref_faces": n_ref,
                        "summary": summary, "not_run": not_run, "figure": "photos.png", "details": "metrics.json",
                        "seconds": round(time.time() - t0, 2)}}


def _p(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"

"""Measure one variant of the chain: cost, the shared evaluation protocol, ONNX exports.

Files per variant (``variants/<name>/``), the same names and I/O as the train stage:
  enhancer.onnx, denoiser.onnx   [1,3,H,W] float [0,1] -> output
  yunet.onnx                     [1,3,H,W] raw 0..255 BGR -> cls_8 .. kps_32 (OpenCV layout)
  pipeline.onnx                  [1,3,H,W] float [0,1] -> cls_8 .. kps_32
  bundle.json + enhancer.pt, denoiser.pt, detector.pt
                                 the (pruned) chain as a model bundle (shared/models/bundle.py):
                                 ``load_bundle(dir)`` rebuilds it at its pruned widths; ``made_by``
                                 says how (``made_by`` below)
  metrics.json                   the row below, with the per-model cost
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import torch

from shared import units
from shared.data import Split
from shared.evaluation import Protocol, evaluate_detection, evaluate_restoration
from shared.metrics.cost import artifact_bytes, count_macs, count_params
from shared.models import OUTPUT_NAMES
from shared.models.bundle import save_bundle
from shared.models.export import check_parity, export_onnx

# per-step histories stay in metrics.json; the bundle says what was done and what it costs
_HISTORY_KEYS = ("history", "finetune")


def cost(pipe, size) -> dict:
    x = torch.zeros(1, 3, *size)
    with torch.no_grad():
        det_in = pipe.to_detector_input(pipe.restore(x)[1])
    return {name: {"params": count_params(m), "macs": count_macs(m, x=inp)}
            for name, m, inp in (("enhancer", pipe.enhancer, x), ("denoiser", pipe.denoiser, x),
                                 ("detector", pipe.detector, det_in), ("pipeline", pipe, x))}


def export(pipe, out: Path, size, opset: int, probe: torch.Tensor, per_model: bool = True) -> dict:
    """Export the four graphs, check ONNX Runtime parity on ``probe`` ([1,3,H,W] in [0,1])."""
    shape = (1, 3, *size)
    with torch.no_grad():
        det_in = pipe.to_detector_input(pipe.restore(probe)[1])
    jobs = {"enhancer": (pipe.enhancer, ["output"], probe), "denoiser": (pipe.denoiser, ["output"], probe),
            "yunet": (pipe.detector, list(OUTPUT_NAMES), det_in), "pipeline": (pipe, list(OUTPUT_NAMES), probe)}
    if not per_model:
        jobs = {"pipeline": jobs["pipeline"]}
    report = {}
    for name, (model, names, sample) in jobs.items():
        path = out / f"{name}.onnx"
        export_onnx(model, path, shape, names, opset=opset)
        data = path.read_bytes()
        report[name] = {"file": path.name, "bytes": artifact_bytes(path), "bytes_deflate": len(zlib.compress(data, 6)),
                        "max_abs_diff_vs_torch": float(check_parity(model, path, sample))}
    return report


def evaluate(pipe, test: Split, proto: Protocol, per_model: bool = False) -> dict:
    """The chain (detection of the pipeline, PSNR/SSIM of the restored image) and, with ``per_model``,
    each exported model the way the report measures a lone file (stages/report/measure.py)."""
    det = evaluate_detection(pipe, test, proto)
    chain = evaluate_restoration(lambda x: pipe.restore(torch.from_numpy(x))[1].detach().numpy(),
                                 test, proto.variant, "0", proto.limit)
    out = {"detection": det, "restoration_chain": chain}
    if per_model:
        out.update({n: evaluate_restoration(getattr(pipe, n), test, units.train_variant(n), units.CLEAN, proto.limit,
                                            proto.batch) for n in units.RESTORATION},
                   yunet=evaluate_detection(pipe.detector, test, proto, input_range=units.input_range("detector")))
    return out


def record(ctx, rel_dir: str, metrics: dict) -> None:
    """This variant's exported files as artifact records (shared/artifacts.py), each with what was
    measured for it, and its chain's metrics when all three nets were exported."""
    ev = metrics["eval"]
    by_file = {"pipeline": ev["detection"], **{k: ev[k] for k in ("enhancer", "denoiser", "yunet") if k in ev}}
    for name, o in metrics["onnx"].items():
        role = "pipeline" if name == "pipeline" else units.unit(name).name
        ctx.artifact(f"{rel_dir}/{o['file']}", role, "fp32", metrics=by_file.get(name), cost={"bytes": o["bytes"]})
    if all(k in metrics["onnx"] for k in ("enhancer", "denoiser", "yunet")):
        ctx.chain_metrics(rel_dir, {**ev["detection"], **{k: ev["restoration_chain"][k] for k in (
            "psnr", "ssim", "psnr_input", "ssim_input")}})


def made_by(name: str, info: dict, row: dict, c: dict) -> dict:
    """The bundle's ``made_by`` of a variant: stage, variant name, how it was built (mode, ratio,
    importance, steps, loss weights, seconds, EDGY job, sparsity ...) and the measured cost."""
    return {"stage": "prune", "variant": name, "method": info.get("mode"),
            **{k: v for k, v in info.items() if k not in _HISTORY_KEYS},
            "params": row["params"], "macs": row["macs"],
            "cost": {p: c[p] for p in ("enhancer", "denoiser", "detector", "pipeline") if p in c}}


def measure(name: str, pipe, test: Split, proto: Protocol, size, out: Path, opset: int, probe,
            extra: dict | None = None, save: bool = True, per_model: bool = True) -> dict:
    """Evaluate, export and write the bundle (if ``save``), write ``metrics.json``; returns the metrics."""
    pipe = pipe.cpu().eval()
    out.mkdir(parents=True, exist_ok=True)
    c = cost(pipe, size)
    ev = evaluate(pipe, test, proto, per_model=save and per_model)
    onnx = export(pipe, out, size, opset, probe, per_model) if save else {}
    det = ev["detection"]
    row = {"variant": name, "ap": det["ap"], "nme": det["nme"], "iou": det["top_box_iou"], "missed": det["missed"],
           "psnr": ev["restoration_chain"]["psnr"], "params": c["pipeline"]["params"],
           "macs": c["pipeline"]["macs"], "bytes": onnx.get("pipeline", {}).get("bytes"),
           "bytes_deflate": onnx.get("pipeline", {}).get("bytes_deflate")}
    metrics = {"row": row, "cost": c, "eval": ev, "onnx": onnx, **(extra or {})}
    if save:
        save_bundle(out, pipe, None, made_by(name, extra or {}, row, c))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    return metrics

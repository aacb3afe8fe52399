"""``run(ctx)``: train enhancer, denoiser and YuNet; chain them; export; evaluate by the shared protocol.

Outputs (``<run>/train/``):
  bundle.json + enhancer.pt, denoiser.pt, detector.pt
                                         the FP32 chain as a model bundle (shared/models/bundle.py):
                                         ``load_bundle(<run>/train)`` rebuilds it; prune/quantize read it
  *.onnx                                 see stages/train/export.py
  detector_mmdet/                        mmdet work dir (config, log, checkpoint)
  metrics.json, curves.png, samples.png
"""
from __future__ import annotations

import json
import time

import torch

from shared import units
from shared.data import load_split, to_float
from shared.drawing import draw_detections
from shared.evaluation import Protocol, detect, evaluate_detection, evaluate_restoration
from shared.metrics.cost import count_macs, count_params
from shared.models import build_models
from shared.models.bundle import save_bundle
from shared import executor
from stages.train import cells, plots
from stages.train.amp import Amp, pick_device
from stages.train.export import export_all, opencv_check


def model_config(cfg: dict, size: tuple[int, int]) -> dict:
    ch = list(cfg["restoration_channels"])
    return {"input_size": list(size), "enhancer": {"channels": ch}, "denoiser": {"channels": ch}}


def cost(pipe, size) -> dict:
    shape = (1, 3, *size)
    x = torch.zeros(shape)
    with torch.no_grad():
        det_in = pipe.to_detector_input(pipe.restore(x)[1])
    return {name: {"params": count_params(m), "macs": count_macs(m, x=inp)}
            for name, m, inp in (("enhancer", pipe.enhancer, x), ("denoiser", pipe.denoiser, x),
                                 ("detector", pipe.detector, det_in), ("pipeline", pipe, x))}


def run(ctx) -> dict:
    cfg, log = ctx.cfg, ctx.log
    data = ctx.input("dataset")
    test = load_split(data, "test")
    size = tuple(ctx.input_manifests["dataset"]["config"]["dataset"]["size"])
    device = pick_device(ctx.config["device"])
    amp = Amp(cfg["amp"], device)
    torch.manual_seed(ctx.seed)
    pipe = build_models(model_config(cfg, size))
    jobs = [cells.TrainJob(part, data, ctx.out, ctx.config, size) for part in cells.PARTS]
    t0 = time.time()
    trained = executor.run_cells(cells.train_cell, jobs, executor.local(ctx.config["executor"], log), log)
    log.info("trained %s in %.0f s", ", ".join(cells.PARTS), time.time() - t0)
    history, timings = {}, {}
    for job, res in zip(jobs, trained):
        getattr(pipe, job.part).load_state_dict(res["state"])
        history[job.part], timings[job.part] = res["history"], res["seconds"]
    history = {k: history[k] for k in (*units.RESTORATION, "detector")}   # the order plots and metrics use
    pipe = pipe.cpu().eval()

    save_bundle(ctx.out, pipe, model_config(cfg, size), {
        "stage": "train", "method": "fp32", "seed": ctx.seed, "precision": amp.describe(), "device": device.type,
        **{n: {"loss": "psnr", "source": f"_{units.train_variant(n)}", "target": f"_{units.CLEAN}",
               **_brief(cfg["restoration"])} for n in units.RESTORATION},
        "detector": {"trainer": "mmdet", **_brief(cfg["detector"])},
        "seconds": {k: round(v, 1) for k, v in timings.items()}})

    proto = Protocol.from_config(ctx.config)
    log.info("evaluating on %d test images (%s)", len(test), proto.variant)
    det_range = units.input_range("detector")
    det_alone = evaluate_detection(pipe.detector, test, proto, input_range=det_range)
    det_clean = evaluate_detection(pipe.detector, test, proto, variant=units.CLEAN, input_range=det_range)
    chain = evaluate_detection(pipe, test, proto)
    restoration = {
        **{n: evaluate_restoration(getattr(pipe, n), test, units.train_variant(n), units.CLEAN, proto.limit)
           for n in units.RESTORATION},
        "chain": evaluate_restoration(lambda x: pipe.restore(torch.from_numpy(x))[1].detach().numpy(),
                                      test, proto.variant, units.CLEAN, proto.limit),
    }

    probe = to_float(test.images(proto.variant, 1))
    onnx = export_all(pipe, ctx.out, size, cfg["export"]["opset"], probe)
    onnx["pipeline"]["eval"] = evaluate_detection(ctx.out / "pipeline.onnx", test, proto)
    onnx["yunet"]["opencv"] = opencv_check(ctx.out / "yunet.onnx", test, "0", cfg["export"]["opencv_images"],
                                           proto.score_thr, proto.nms_iou)

    record_artifacts(ctx, onnx, {"enhancer": restoration["enhancer"], "denoiser": restoration["denoiser"],
                                 "yunet": det_alone, "pipeline": onnx["pipeline"]["eval"]})
    ctx.chain_metrics(".", {**chain, **restoration["chain"]})   # the PyTorch chain, as prune/quantize measure theirs

    plots.curves(history, ctx.out / "curves.png")
    _samples(pipe, test, proto, cfg["samples"], ctx.out / "samples.png")
    throughput = {k: round(history[k][-1]["images_per_s"], 2) for k in history if history[k]
                  and "images_per_s" in history[k][-1]}
    metrics = {
        "detection": {"pipeline": chain, "detector_alone": det_alone, "detector_on_clean": det_clean},
        "restoration": restoration, "cost": cost(pipe, size), "onnx": onnx,
        "train_seconds": {k: round(v, 1) for k, v in timings.items()},
        "train_images_per_s": throughput, "precision": amp.describe(), "device": device.type,
    }
    (ctx.out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    (ctx.out / "history.json").write_text(json.dumps(history, indent=2, default=float) + "\n")
    log.info("AP@0.5 on %s: pipeline %.3f vs detector alone %.3f (clean %.3f); PSNR enhancer %.2f (input %.2f), "
             "denoiser %.2f (input %.2f)", proto.variant, chain["ap"], det_alone["ap"], det_clean["ap"],
             restoration["enhancer"]["psnr"], restoration["enhancer"]["psnr_input"],
             restoration["denoiser"]["psnr"], restoration["denoiser"]["psnr_input"])
    return {"metrics": metrics}


def record_artifacts(ctx, onnx: dict, metrics: dict) -> None:
    """One record per exported file (export_all's keys: the three nets, yunet being the detector,
    and the whole pipeline), with what this stage measured for it."""
    for name, entry in onnx.items():
        role = "pipeline" if name == "pipeline" else units.unit(name).name
        ctx.artifact(ctx.out / entry["file"], role, "fp32", metrics=metrics[name],
                     cost={"bytes": entry["bytes"]})


def _brief(section: dict) -> dict:
    """The scalar settings of a config section (epochs, batch size, lr ...) for ``made_by``."""
    return {k: v for k, v in section.items() if isinstance(v, (int, float, str, bool)) or v is None}


def _samples(pipe, split, proto, n, path) -> None:
    if n <= 0:
        return
    imgs = split.images(proto.variant, n)
    x = torch.from_numpy(to_float(imgs))
    with torch.no_grad():
        enhanced, denoised = pipe.restore(x)
    dets = detect(pipe, split, Protocol(**{**proto.__dict__, "limit": n}))
    as_u8 = lambda t: (t.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype("uint8")  # noqa: E731
    e8, d8 = as_u8(enhanced), as_u8(denoised)
    rows = [{f"input _{proto.variant}": imgs[i], "enhanced": e8[i], "denoised": d8[i],
             "detections": draw_detections(d8[i], dets[i])} for i in range(len(imgs))]
    plots.strip(rows, path)

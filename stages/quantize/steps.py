"""``run(ctx)``: quantize the FP32 candidates - AIMET PTQ grid, single-shot QAT, INQ, NNCF PTQ,
joint QAT (JMMC) vs independently QAT'd models chained - and write the results table.

Outputs (``<run>/quantize/``):
  <candidate>/<model>/<variant>.onnx           QDQ INT8 ONNX (int8 weights), runs in ONNX Runtime
  <candidate>/<model>/<variant>.encodings.json AIMET encodings
  <candidate>/<model>/fp32.onnx                the FP32 reference export
  results.csv, results.md                      the grid: method x model x seed, mean/std over seeds
  metrics.json                                 every row + the benchmark figures
"""
from __future__ import annotations

import copy
import json
import time

import torch

from shared.data import load_split
from shared.evaluation import Protocol, ort_session
from stages.quantize import aimet_ptq, candidates, grid, inq, measure, nncf_ptq, onnx_io, table
from stages.quantize.grid import Cell
from stages.quantize.methods import Runner, chained_onnx, primary
from stages.quantize.qat import VARIANT, qat


def run(ctx) -> dict:
    cfg, log = ctx.cfg, ctx.log
    cells = grid.expand(cfg["ptq"])
    models = grid.check_models(cfg["models"])
    cands = candidates.resolve(ctx, cfg["candidates"])
    if not cands:
        return {"skipped": "needs an FP32 candidate (quantize.candidates: upstream train/prune outputs)", "metrics": {}}
    data = ctx.input("dataset")
    proto = Protocol.from_config(ctx.config)
    r = Runner(ctx.out, load_split(data, "test"), load_split(data, "calibration"), load_split(data, "train"),
               proto, cfg["export"]["opset"], cfg["export"]["int8_weights"])
    nncf_args = nncf_ptq.from_edgy(cfg["nncf"]["config"], cfg["nncf"]["subset_size"]) if cfg["nncf"]["enabled"] else None
    bench, joint = {}, {}
    for cand in cands:
        t0 = time.time()
        pipe = candidates.load(cand)
        log.info("candidate %s (%s): %d models x %d PTQ cells", cand.name, cand.root, len(models), len(cells))
        best, qat_paths, qat_mods = {}, {}, {}
        for name in models:
            best[name] = _model(ctx, r, cand.name, name, candidates.unit(pipe, name),
                                grid.cells_for(cells, cfg["ptq"], name), nncf_args)
            if cfg["qat"]["enabled"] and name != "pipeline" and best[name]:
                qat_mods[name], qat_paths[name] = _qat(ctx, r, cand.name, name, best[name])
        if cfg["joint"]["enabled"] and "pipeline" in models and best.get("pipeline"):
            joint[cand.name] = _joint(ctx, r, cand.name, pipe, best["pipeline"], qat_mods, qat_paths)
        if best.get("pipeline"):
            calib = [b.numpy() for b in r.calib("pipeline", ctx.seed, cfg["bench"]["ort_calibration_images"], 1)]
            stem = ctx.out / cand.name / "pipeline"
            ref = onnx_io.ort_static_int8(stem / "fp32.onnx", calib, ctx.out / ".bench" / f"{cand.name}_ort_int8.onnx")
            bench[cand.name] = {**onnx_io.bench_pair(stem / "fp32.onnx", ctx.out / best["pipeline"]["row"]["onnx_file"],
                                                     calib[0], cfg["bench"]["runs"], ref),
                                "fp32_bytes": onnx_io.weight_bytes(stem / "fp32.onnx"),
                                # accuracy with the fused int8 kernels this CPU times (saturating without VNNI)
                                "int8_fused_kernels_eval": measure.evaluate(
                                    ort_session(ctx.out / best["pipeline"]["row"]["onnx_file"], fused_int8=True),
                                    "pipeline", r.test, r.proto),
                                "int8_bytes": best["pipeline"]["row"]["export"], "int8_variant": best["pipeline"]["row"]["method"]}
            log.info("latency %s: %s", cand.name, json.dumps(bench[cand.name]["1_thread"]))
        log.info("candidate %s done in %.1f s", cand.name, time.time() - t0)
    summary = table.write(r.rows, ctx.out)
    metrics = {"rows": r.rows, "summary": summary, "benchmark": bench, "joint_vs_independent": joint,
               "grid": [c.name for c in cells], "max_sim_onnx_gap": max((x["max_gap"] for x in r.rows), default=0.0)}
    (ctx.out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n")
    return {"metrics": {k: v for k, v in metrics.items() if k != "rows"}}


def _model(ctx, r: Runner, cand: str, name: str, unit, cells, nncf_args) -> dict | None:
    cfg, log = ctx.cfg, ctx.log
    batch = r.proto.batch
    calib0 = r.calib(name, ctx.seed, cfg["ptq"]["calibration_images"], batch)
    dummy = calib0[0][:1]
    fp32_path = onnx_io.export_fp32(unit, name, dummy, ctx.out / cand / name / "fp32.onnx", r.opset)
    fp32_bytes = onnx_io.weight_bytes(fp32_path)["weight_bytes"]
    fp32 = {"sim": measure.evaluate(unit, name, r.test, r.proto), "onnx": measure.evaluate(fp32_path, name, r.test, r.proto)}
    r.rows.append({"candidate": cand, "model": name, "method": "fp32", "bits": "FP32", "seed": ctx.seed, **fp32,
                   "max_gap": measure.max_gap(measure.gap(fp32["sim"], fp32["onnx"])), "fp32_bytes": fp32_bytes,
                   "int8_bytes": None, "onnx_file": str(fp32_path.relative_to(ctx.out))})
    best = None
    for cell in cells:
        t0 = time.time()
        calib = r.calib(name, cell.seed, cfg["ptq"]["calibration_images"], batch)
        sim, _ = aimet_ptq.ptq(unit, cell, calib, ctx.out / cand / name / f"{cell.name}_work",
                               cfg["ptq"]["adaround_iterations"])
        row = r.record(cand, name, cell.method, cell.bits, cell.seed, sim.model, sim, dummy, cell.name, fp32_bytes,
                       {"cell": cell.name, "ptq_seconds": round(time.time() - t0, 1)})
        if cell.bits == "W8A8" and (best is None or primary(name, row["sim"]) > primary(name, best["row"]["sim"])):
            best = {"sim": sim, "row": row, "cell": cell, "dummy": dummy}
    if nncf_args is not None and name in cfg["nncf"]["models"]:
        qmodel = nncf_ptq.quantize(copy.deepcopy(unit), calib0, nncf_args)
        r.record(cand, name, "nncf:" + nncf_args["preset"], "W8A8", ctx.seed, qmodel, None, dummy, "nncf", fp32_bytes,
                 {"nncf": nncf_args},
                 onnx_exporter=lambda p: {"onnx": str(nncf_ptq.export_onnx(qmodel, name, dummy, p.with_suffix(".onnx"), r.opset)),
                                          **onnx_io.weight_bytes(p.with_suffix(".onnx"))})
    if cfg["inq"]["enabled"] and name in cfg["inq"]["models"]:
        _inq(ctx, r, cand, name, unit, dummy, fp32_bytes)
    return best


def _qat(ctx, r: Runner, cand: str, name: str, best: dict):
    """Single-shot QAT from the best W8A8 PTQ sim (a copy: the PTQ row stays as measured)."""
    sim = best["sim"]
    hist = qat(sim, name, r.train, ctx.cfg["qat"], r.proto.variant, ctx.seed, ctx.log)
    row = r.record(cand, name, f"qat({best['cell'].method})", "W8A8", best["cell"].seed, sim.model, sim,
                   best["dummy"], "qat", best["row"]["fp32_bytes"], {"history": hist})
    return sim.model, ctx.out / row["onnx_file"]


def _joint(ctx, r: Runner, cand: str, pipe, best: dict, qat_mods: dict, qat_paths: dict) -> dict:
    """JMMC joint QAT of the pipeline sim vs the independently QAT'd models chained."""
    jc = ctx.cfg["joint"]
    sim = best["sim"]
    hist = qat(sim, "pipeline", r.train, jc, r.proto.variant, ctx.seed, ctx.log,
               {"w_det": jc["w_det"], "w_den": jc["w_den"], "w_lle": jc["w_lle"]})
    jrow = r.record(cand, "pipeline", "joint_qat", "W8A8", best["cell"].seed, sim.model, sim, best["dummy"],
                    "joint_qat", best["row"]["fp32_bytes"], {"history": hist})
    out = {"ptq_best": best["row"]["sim"], "joint_qat": jrow["sim"], "joint_qat_onnx": jrow["onnx"]}
    if all(k in qat_mods for k in ("enhancer", "denoiser", "detector")):
        from shared.models.pipeline import Pipeline
        chain = Pipeline(qat_mods["enhancer"], qat_mods["denoiser"], qat_mods["detector"],
                         swap_rb=pipe.swap_rb, clamp=pipe.clamp).eval()
        fn = chained_onnx(qat_paths["enhancer"], qat_paths["denoiser"], qat_paths["detector"])
        sim_m = measure.evaluate(chain, "pipeline", r.test, r.proto)
        onnx_m = measure.evaluate(fn, "pipeline", r.test, r.proto)
        g = measure.gap(sim_m, onnx_m)
        r.rows.append({"candidate": cand, "model": "pipeline", "method": "independent_qat_chained", "bits": "W8A8",
                       "seed": ctx.seed, "sim": sim_m, "onnx": onnx_m, "gap": g, "max_gap": measure.max_gap(g),
                       "int8_bytes": None, "fp32_bytes": best["row"]["fp32_bytes"],
                       "onnx_file": "chain of the three qat.onnx"})
        out.update(independent_qat=sim_m, independent_qat_onnx=onnx_m)
    else:
        ctx.log.warning("joint vs independent: needs enhancer, denoiser and detector in quantize.models with qat")
    return out


def _inq(ctx, r: Runner, cand: str, name: str, unit, dummy, fp32_bytes: int) -> None:
    """INQ (powers of two) with retraining of the free weights, then AIMET QuantSim W8A8."""
    from shared.jmmc import batches
    from stages.quantize.qat import unit_loss
    import numpy as np
    ic = ctx.cfg["inq"]
    model = copy.deepcopy(unit).train()
    loss_fn, rng = unit_loss(name), np.random.default_rng(ctx.seed)

    def retrain(m, after_step):
        opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=ic["lr"], weight_decay=0.0)
        for _ in range(ic["epochs_per_step"]):
            for x, clean, boxes, kps in batches(r.train, VARIANT.get(name, r.proto.variant), ic["batch_size"], rng, ic["limit"]):
                loss = loss_fn(m, x, clean, boxes, kps)["loss"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                after_step()
    info = inq.run_inq(model, ic["schedule"], ic["bits"], ic["partition"], ctx.seed, retrain, ctx.log)
    model.eval()
    cell = Cell("none", False, "W8A8", ctx.seed, ctx.cfg["ptq"]["quant_scheme"])
    calib = r.calib(name, ctx.seed, ctx.cfg["ptq"]["calibration_images"], r.proto.batch)
    sim = aimet_ptq.build_sim(model, dummy, cell, calib, ctx.out / cand / name / "inq_work")
    r.record(cand, name, f"inq({ic['partition']},{ic['bits']}b)+ptq", "W8A8", ctx.seed, sim.model, sim, dummy, "inq",
             fp32_bytes, {"inq": info})

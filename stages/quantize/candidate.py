"""One quantize candidate, start to finish, as one or two jobs: its FP32 rows, the PTQ grid, NNCF,
INQ, QAT per model, joint QAT (JMMC) vs the independently QAT'd models chained, and the best INT8
pipeline vs FP32.

:func:`parts` splits a candidate that quantizes the pipeline and single nets into two jobs: the
single nets (their grids, INQ, QAT, the independently QAT'd chain) and the pipeline (its grid,
NNCF, joint QAT); neither reads what the other computes, and the larger candidate is then two
jobs of about the size of the others.  :func:`run_candidate` takes a :class:`CandidateJob` and runs
in any process on this machine: the stage runs the jobs side by side in spawned processes
(``shared.executor``, local, several workers; the PTQ grid of each then runs inside it) or one
after another in its own process (one worker, one job, or Ray: the grid's cells are then the
executor's cells).  Either way every job computes with ``executor.cpus_per_cell`` threads, so the
rows are the same.  A job carries a copy of the stage context with empty artifact records: the
rows' ONNX files are recorded there (``Runner.describe``) and handed back with the rows and the
test detections.  :func:`merge` joins a candidate's parts in the stage: the rows in one order
(single nets, pipeline, the chained row last), joint - independent, the best INT8 pipeline vs
FP32.  Latency is not measured here (jobs may run side by side): the stage times the pipelines after.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from shared import executor, units
from shared.evaluation import as_fn, ort_session
from stages.quantize import aimet_ptq, candidates, grid, inq, measure, nncf_ptq, onnx_io
from stages.quantize import cells as cellwork
from stages.quantize.file_bias import file_biases
from stages.quantize.grid import Cell
from stages.quantize.methods import REPORTED, SELECT, Runner, chained_onnx, choose, folder_name, make_runner, \
    row_key, selection_record
from stages.quantize.qat import qat


@dataclass(frozen=True)
class CandidateJob:
    ctx: object            # the stage context (shared.stage.StageContext), artifacts and chains empty
    cand: candidates.Candidate
    models: tuple          # the units to quantize (the candidate's own list, else quantize.models)
    cells: tuple           # the PTQ grid (grid.expand)
    nncf_args: dict | None
    data: Path             # the dataset stage's output
    grid_spec: dict        # where this candidate's PTQ cells run (an executor section, workers resolved)
    chain: bool = False    # this job chains its QAT'd nets (the candidate's pipeline is joint-QAT'd elsewhere)


SINGLE = ("enhancer", "denoiser", "detector")   # the independently QAT'd nets the chained row runs in series


def parts(models) -> list[tuple]:
    """The jobs a candidate's units run in: the single nets apart from the pipeline when it has both."""
    models = tuple(models)
    if "pipeline" in models and len(models) > 1:
        return [tuple(m for m in models if m != "pipeline"), ("pipeline",)]
    return [models]


def weight(part) -> int:
    """A job's rough cost, for the order jobs start in (largest first): a single net 1, the pipeline 2.
    A single net has more rows than the pipeline (QAT, INQ, AdaRound cells) at a third of the cost
    each; on the demo three single nets took 265-290 s, a pipeline 190-215 s, a lone YuNet 105-115 s."""
    return sum(2 if m == "pipeline" else 1 for m in part)


def job_for(ctx, cand, models, cells, nncf_args, data, grid_spec, chain: bool = False) -> CandidateJob:
    return CandidateJob(dataclasses.replace(ctx, artifacts=[], chains={}), cand, tuple(models), tuple(cells),
                        nncf_args, data, grid_spec, chain)


def run_candidate(job: CandidateJob) -> dict:
    """One part of a candidate: {rows, artifacts, dets (test detections of its pipeline rows), best_pipeline
    (its row or None), selection, provenance, ran, joint (the pipeline's part), independent (the chained row)}."""
    ctx, cand, cfg = job.ctx, job.cand, job.ctx.cfg
    t0 = time.time()
    r = make_runner(ctx.out, job.data, ctx.config, ctx)   # Runner.add records each row's ONNX file (ctx.artifact)
    pipe = candidates.load(cand)
    r.upstream = {n: as_fn(candidates.unit(pipe, n)) for n in ("enhancer", "denoiser")}  # calibration: chain
    prov = _provenance(ctx, cand, pipe)
    cmodels = list(job.models)
    ctx.log.info("candidate %s (%s, made by %s): %s x %d PTQ cells", cand.name, cand.root, prov["made_by"],
                 ", ".join(cmodels), len(job.cells))
    best, qat_paths, qat_mods, selection, out = {}, {}, {}, {}, {}
    fp32 = {name: _fp32(ctx, r, cand.name, name, candidates.unit(pipe, name)) for name in cmodels}
    grid_cells, ran = _run_grid(ctx, r, cand, {n: grid.cells_for(list(job.cells), cfg["ptq"], n) for n in cmodels},
                                {n: f["fp32_bytes"] for n, f in fp32.items()}, job.data, job.grid_spec)
    for name in cmodels:
        best[name] = _model(ctx, r, cand.name, name, candidates.unit(pipe, name), fp32[name], grid_cells[name],
                            job.nncf_args)
        if best[name]:
            selection[name] = best[name]["selection"]
        if cfg["qat"]["enabled"] and name != "pipeline" and best[name]:
            qat_mods[name], qat_paths[name] = _qat(ctx, r, cand.name, name, best[name])
    if cfg["joint"]["enabled"] and "pipeline" in cmodels and best.get("pipeline"):
        out["joint"] = _joint_qat(ctx, r, cand.name, best["pipeline"])
    if job.chain and all(k in qat_mods for k in SINGLE):
        out["independent"] = _independent_chain(ctx, r, cand.name, pipe, qat_mods, qat_paths)
    best_row = best["pipeline"]["row"] if best.get("pipeline") else None
    ctx.log.info("candidate %s (%s) done in %.1f s", cand.name, ", ".join(cmodels), time.time() - t0)
    return {"rows": r.rows, "artifacts": ctx.artifacts, "dets": r.dets, "best_pipeline": best_row,
            "selection": selection, "provenance": prov, "ran": ran, "chain": job.chain, **out}


def merge(ctx, r: Runner, cand, results: list[dict]) -> dict:
    """A candidate's parts joined in the stage's runner ``r`` (rows and test detections added): {rows,
    artifacts, best_pipeline, selection, provenance, ran, joint, vs_fp32, fast_eval}, as one job gave them."""
    rows = [x for res in results for x in res["rows"]]
    chained = [x for x in rows if x["method"] == "independent_qat_chained"]
    rows = [x for x in rows if x["method"] != "independent_qat_chained"] + chained
    fp32_pipe = next((x for x in rows if x["model"] == "pipeline" and x["method"] == "fp32"), None)
    for x in chained:   # the chain is compared with the pipeline: its FP32 bytes
        x["fp32_bytes"] = fp32_pipe["fp32_bytes"] if fp32_pipe else None
    r.rows.extend(rows)
    for res in results:
        r.dets.update(res["dets"])
    ran = [res["ran"] for res in results]
    out = {"rows": rows, "artifacts": [a for res in results for a in res["artifacts"]],
           "best_pipeline": next((res["best_pipeline"] for res in results if res["best_pipeline"]), None),
           "selection": {k: v for res in results for k, v in res["selection"].items()},
           "provenance": results[0]["provenance"],
           "ran": {"kind": ran[0]["kind"], "cells": sum(x["cells"] for x in ran),
                   "seconds": round(sum(x["seconds"] for x in ran), 1), "retried": [y for x in ran for y in x["retried"]]}}
    joint = next((res["joint"] for res in results if "joint" in res), None)
    indep = next((res["independent"] for res in results if "independent" in res), None)
    if joint is not None:
        out["joint"] = {**joint, **(_joint_vs_independent(ctx, r, cand.name, indep) if indep else {})}
        if indep is None and any(res["chain"] for res in results):
            ctx.log.warning("joint vs independent: needs the enhancer, denoiser and detector QAT'd (quantize.qat, "
                            "a W8A8 PTQ cell each)")
    best_row = out["best_pipeline"]
    if best_row:
        out["vs_fp32"] = _int8_vs_fp32(ctx, r, cand.name)
        # a default session's score ("fast"), quoted beside the latency (steps._bench), at a cell's threads
        with executor.cell_threads(ctx.config["executor"]["cpus_per_cell"]):
            out["fast_eval"] = measure.evaluate(ort_session(ctx.out / best_row["onnx_file"], mode="fast"), "pipeline",
                                                r.test, r.proto)
    return out


def _provenance(ctx, cand, pipe) -> dict:
    """Where a candidate came from: its bundle's ``made_by`` (a pruned bundle says how it was pruned)
    and the parameter count of each part as loaded (pruned widths, not the base config's)."""
    from shared.models.bundle import is_bundle, read_record
    try:
        where = str(cand.root.relative_to(ctx.run_dir))
    except (AttributeError, ValueError):
        where = str(cand.root)
    out = {"stage": cand.stage, "kind": cand.kind, "role": cand.role, "folder": folder_name(cand.name), "dir": where,
           "params": {p: int(sum(t.numel() for t in getattr(pipe, p).parameters())) for p in candidates.PARTS}}
    if is_bundle(cand.root):
        rec = read_record(cand.root)
        out.update(format=rec["format"], made_by=rec["made_by"])
    else:
        out.update(format="models.json", made_by={"stage": cand.stage, "kind": cand.kind,
                                                  "note": "no bundle.json: a train output in the models.json format"})
    return out


def _fp32(ctx, r: Runner, cand: str, name: str, unit) -> dict:
    """The candidate's own FP32 export of a unit (its bytes are what the INT8 rows compare with) and
    its row, measured now and added with the unit's other rows (:func:`_model`)."""
    dummy = r.calib(name, ctx.seed, r.proto.batch)[0][:1]
    fp32_path = onnx_io.export_fp32(unit, name, dummy, ctx.out / folder_name(cand) / name / "fp32.onnx", r.opset)
    fp32_bytes = onnx_io.weight_bytes(fp32_path)["weight_bytes"]
    sim_m, _, sim_dets = r.measure(unit, name, selectable=False)
    onnx_m, _, onnx_dets = r.measure(fp32_path, name, selectable=False)
    row = {"candidate": cand, "model": name, "method": "fp32", "bits": "FP32", "seed": ctx.seed, "split": REPORTED,
           "sim": sim_m, "onnx": onnx_m, "max_gap": measure.max_gap(measure.gap(sim_m, onnx_m)),
           "fp32_bytes": fp32_bytes, "int8_bytes": None, "onnx_file": str(fp32_path.relative_to(ctx.out))}
    return {"dummy": dummy, "fp32_bytes": fp32_bytes, "row": (row, sim_dets, onnx_dets)}


def _run_grid(ctx, r: Runner, cand, models_cells: dict, fp32_bytes: dict, data, spec: dict) -> dict[str, list]:
    """Every PTQ cell of a candidate's units, on the executor ``spec`` (shared/executor.py):
    ({unit: [(job, result), ...]} in grid order, what ran where)."""
    t0 = time.time()
    jobs = cellwork.jobs_for(cand, models_cells, fp32_bytes, ctx.out, data, ctx.config, spec)
    fn = functools.partial(cellwork.ptq_cell, r=r) if executor.in_process(spec, len(jobs)) else cellwork.ptq_cell
    attempts = ctx.out / ".cells" / folder_name(cand.name) / "+".join(models_cells)   # a part's own (side by side)
    results = executor.run_cells(fn, jobs, spec, ctx.log, attempts, cellwork.PACKAGE)
    retried = [f"{j.model}/{j.cell.name} ({n}x)" for j, n in zip(jobs, executor.attempt_counts(attempts, len(jobs)))
               if n > 1]
    if retried:
        ctx.log.warning("executor: cells run again after a lost worker: %s", ", ".join(retried))
    shutil.rmtree(attempts, ignore_errors=True)   # this part's only: others may be running beside it
    out: dict[str, list] = {n: [] for n in models_cells}
    for job, res in zip(jobs, results):
        out[job.model].append((job, res))
    return out, {"kind": spec["kind"], "cells": len(jobs), "seconds": round(time.time() - t0, 1), "retried": retried}


def _model(ctx, r: Runner, cand: str, name: str, unit, fp32: dict, grid_cells: list, nncf_args) -> dict | None:
    """A unit's rows in order (FP32, the PTQ cells, NNCF, INQ); the W8A8 cell chosen on val, with its sim."""
    cfg = ctx.cfg
    dummy, fp32_bytes = fp32["dummy"], fp32["fp32_bytes"]
    calib0 = r.calib(name, ctx.seed, r.proto.batch)
    r.add(*fp32["row"])
    best, considered = None, []
    for job, res in grid_cells:
        row = r.add(res["row"], res["sim_dets"], res["onnx_dets"])
        if job.cell.bits == "W8A8":   # chosen on val (sim_val), never on the reported test figures
            entry = {"row": row, "cell": job.cell, "dummy": dummy, "job": job, "sim": res["sim"]}
            considered.append({"row": row})
            best = entry if best is None else choose(name, [best, entry], SELECT)
    if best is not None:
        best["selection"] = selection_record(name, best, considered, SELECT)
        if best["sim"] is None:    # the cell ran on a Ray worker: its sim is rebuilt here to continue from
            best["sim"] = cellwork.rebuild_sim(best["job"], r)
    if nncf_args is not None and name in cfg["nncf"]["models"]:
        qmodel = nncf_ptq.quantize(copy.deepcopy(unit), calib0, nncf_args)
        r.record(cand, name, "nncf:" + nncf_args["preset"], "W8A8", ctx.seed, qmodel, None, dummy, "nncf", fp32_bytes,
                 {"nncf": nncf_args},
                 onnx_exporter=lambda p: {"onnx": nncf_ptq.export_onnx(qmodel, name, dummy, p.with_suffix(".onnx"), r.opset).name,
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


def _joint_qat(ctx, r: Runner, cand: str, best: dict) -> dict:
    """JMMC joint QAT of the pipeline sim (from the best W8A8 PTQ cell, chosen on val)."""
    jc = ctx.cfg["joint"]
    sim = best["sim"]
    hist = qat(sim, "pipeline", r.train, jc, r.proto.variant, ctx.seed, ctx.log,
               {"w_det": jc["w_det"], "w_den": jc["w_den"], "w_lle": jc["w_lle"]})
    jrow = r.record(cand, "pipeline", "joint_qat", "W8A8", best["cell"].seed, sim.model, sim, best["dummy"],
                    "joint_qat", best["row"]["fp32_bytes"], {"history": hist})
    return {"split": REPORTED, "ptq_best": best["row"]["sim"], "ptq_best_cell": best["cell"].name,
            "ptq_best_selected_on": SELECT, "joint_qat": jrow["sim"], "joint_qat_onnx": jrow["onnx"]}


def _independent_chain(ctx, r: Runner, cand: str, pipe, qat_mods: dict, qat_paths: dict) -> dict:
    """The independently QAT'd nets chained (torch sims and their three ONNX files): its row, added;
    its FP32 bytes are the pipeline's, filled in by :func:`merge`."""
    from shared.models.pipeline import Pipeline
    chain = Pipeline(qat_mods["enhancer"], qat_mods["denoiser"], qat_mods["detector"], swap_rb=pipe.swap_rb,
                     clamp=pipe.clamp, pixel_scale=getattr(pipe, "pixel_scale", 255.0)).eval()
    fn = chained_onnx(qat_paths["enhancer"], qat_paths["denoiser"], qat_paths["detector"])
    with contextlib.ExitStack() as biases:   # each sim with its own file's int32 biases (file_bias)
        for n in ("enhancer", "denoiser", "detector"):
            biases.enter_context(file_biases(qat_mods[n], qat_paths[n]))
        sim_m, sim_val, sim_dets = r.measure(chain, "pipeline")
    onnx_m, _, onnx_dets = r.measure(fn, "pipeline", selectable=False)
    g = measure.gap(sim_m, onnx_m)
    r.add({"candidate": cand, "model": "pipeline", "method": "independent_qat_chained", "bits": "W8A8",
           "seed": ctx.seed, "split": REPORTED, "sim": sim_m, "onnx": onnx_m, "sim_val": sim_val, "gap": g,
           "max_gap": measure.max_gap(g), "gap_ap": r.gap_interval("pipeline", sim_dets, onnx_dets),
           "int8_bytes": None, "fp32_bytes": None, "onnx_file": "chain of the three qat.onnx"}, sim_dets, onnx_dets)
    return {"independent_qat": sim_m, "independent_qat_onnx": onnx_m}


def _joint_vs_independent(ctx, r: Runner, cand: str, indep: dict) -> dict:
    """AP(joint QAT) - AP(independent QAT chained) of the ONNX files on the test images, paired bootstrap
    95 % interval (``ap_diff_sim``: the same for the torch simulations); both rows' detections are in ``r``."""
    rows = {x["method"]: x for x in r.rows if x["candidate"] == cand and x["model"] == "pipeline"}
    a, b = r.dets[row_key(rows["joint_qat"])], r.dets[row_key(rows["independent_qat_chained"])]
    nb = ctx.cfg["intervals"]["n_boot"]
    out = {**indep,
           "ap_diff": {"a": "joint_qat", "b": "independent_qat_chained", "system": "onnx",
                       **measure.ap_diff(a["onnx"], b["onnx"], r.test, r.proto, nb, ctx.seed)},
           "ap_diff_sim": {"a": "joint_qat", "b": "independent_qat_chained", "system": "sim",
                           **measure.ap_diff(a["sim"], b["sim"], r.test, r.proto, nb, ctx.seed)}}
    ctx.log.info("%s joint - independent AP (onnx, test): %.4f [%.4f, %.4f]", cand, out["ap_diff"]["value"],
                 out["ap_diff"]["lo"], out["ap_diff"]["hi"])
    return out


def _int8_vs_fp32(ctx, r: Runner, cand: str) -> dict:
    """The best INT8 pipeline of a candidate (chosen on val among every W8A8 pipeline row) vs its FP32
    pipeline on the test images: AP intervals and the paired interval of AP(int8) - AP(fp32)."""
    rows = [x for x in r.rows if x["candidate"] == cand and x["model"] == "pipeline" and row_key(x) in r.dets]
    fp32 = next(x for x in rows if x["method"] == "fp32")
    entries = [{"row": x} for x in rows if x["bits"] == "W8A8" and x.get("sim_val")]
    chosen = choose("pipeline", entries, SELECT)
    a, b = r.dets[row_key(chosen["row"])], r.dets[row_key(fp32)]
    nb, seed = ctx.cfg["intervals"]["n_boot"], ctx.seed
    out = {"split": REPORTED, "selection": selection_record("pipeline", chosen, entries, SELECT),
           "int8": chosen["row"]["method"], "int8_file": chosen["row"]["onnx_file"], "fp32_file": fp32["onnx_file"],
           "int8_ap": measure.ap_interval(a["onnx"], r.test, r.proto, nb, seed),
           "fp32_ap": measure.ap_interval(b["onnx"], r.test, r.proto, nb, seed),
           "ap_diff": {"a": chosen["row"]["method"], "b": "fp32", "system": "onnx",
                       **measure.ap_diff(a["onnx"], b["onnx"], r.test, r.proto, nb, seed)},
           "ap_diff_sim": {"a": chosen["row"]["method"], "b": "fp32", "system": "sim",
                           **measure.ap_diff(a["sim"], b["sim"], r.test, r.proto, nb, seed)}}
    ctx.log.info("%s best INT8 (%s, chosen on val) - FP32 AP (onnx, test): %.4f [%.4f, %.4f]", cand, out["int8"],
                 out["ap_diff"]["value"], out["ap_diff"]["lo"], out["ap_diff"]["hi"])
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
            for x, clean, boxes, kps in batches(r.train, units.train_variant(name, r.proto.variant), ic["batch_size"], rng, ic["limit"]):
                loss = loss_fn(m, x, clean, boxes, kps)["loss"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                after_step()
    info = inq.run_inq(model, ic["schedule"], ic["bits"], ic["partition"], ctx.seed, retrain, ctx.log)
    model.eval()
    cell = Cell("none", False, "W8A8", ctx.seed, ctx.cfg["ptq"]["quant_scheme"])
    calib = r.calib(name, ctx.seed, r.proto.batch)
    sim = aimet_ptq.build_sim(model, dummy, cell, calib, ctx.out / folder_name(cand) / name / "inq_work")
    r.record(cand, name, f"inq({ic['partition']},{ic['bits']}b)+ptq", "W8A8", ctx.seed, sim.model, sim, dummy, "inq",
             fp32_bytes, {"inq": info})

"""``run(ctx)``: quantize the FP32 candidates - AIMET PTQ grid, single-shot QAT, INQ, NNCF PTQ,
joint QAT (JMMC) vs independently QAT'd models chained - and write the results table.

Splits: every reported figure (rows' ``sim`` / ``onnx``, the intervals) is measured on the
test split; every choice (the W8A8 PTQ cell QAT and joint QAT start from, the best INT8
pipeline compared with FP32) is made on the val split (rows' ``sim_val``), never on test.

Outputs (``<run>/quantize/``):
  <folder>/<model>/<variant>.onnx           QDQ INT8 ONNX (int8 weights), runs in ONNX Runtime
  <folder>/<model>/<variant>.encodings.json AIMET encodings
  <folder>/<model>/fp32.onnx                the FP32 reference export (of this candidate: a pruned
                                            candidate's own, narrower, FP32 model)
  results.csv, results.md                   the grid: method x model x seed, mean/std over seeds
  metrics.json                              every row + selection, intervals, benchmark, provenance
  manifest.json "artifacts"                 one record per ONNX file above (``Runner.describe``)
``<folder>`` is the candidate name made filesystem-safe (``methods.folder_name``).

Each candidate is one job, or two when it quantizes the pipeline and single nets
(stages/quantize/candidate.py, ``parts``): the jobs run side by side on the local executor when it
has the workers, each with its PTQ grid inside; otherwise they run one after another here and their
grid cells are the executor's cells (spawned processes or Ray tasks).  ``candidate.merge`` joins a
candidate's parts here.
The latency benchmark runs here, after them, with nothing else computing.
"""
from __future__ import annotations

import json
import shutil

from shared import calibration, executor
from shared.evaluation import Protocol, accuracy_mode
from shared.ort_runtime import cpu_int8_features
from stages.quantize import candidate, candidates, grid, measure, nncf_ptq, onnx_io, table
from stages.quantize.methods import REPORTED, SELECT, folder_name, make_runner


def run(ctx) -> dict:
    cfg, log = ctx.cfg, ctx.log
    cells = grid.expand(cfg["ptq"])
    models = grid.check_models(cfg["models"])
    cands = candidates.resolve(ctx, cfg["candidates"])
    if not cands:
        return {"skipped": "needs an FP32 candidate (quantize.candidates: upstream train/prune outputs)", "metrics": {}}
    folders = {}
    for cand in cands:
        f = folder_name(cand.name)
        if f in folders:
            raise candidates.CandidateError(f"quantize.candidates: {cand.name!r} and {folders[f]!r} both write "
                                            f"{f}/ (listed twice?)")
        folders[f] = cand.name
    data = ctx.input("dataset")
    proto = Protocol.from_config(ctx.config)
    r = make_runner(ctx.out, data, ctx.config, ctx)
    nncf_args = nncf_ptq.from_edgy(cfg["nncf"]["config"], cfg["nncf"]["subset_size"]) if cfg["nncf"]["enabled"] else None
    units = {cand.name: grid.check_models(list(cand.models)) if cand.models else models   # its own list wins
             for cand in cands}
    plan = [(cand, part) for cand in cands for part in candidate.parts(units[cand.name])]
    plan.sort(key=lambda cp: -candidate.weight(cp[1]))   # the largest jobs first (the workers end together)
    outer, inner = spread(ctx.config["executor"], len(plan))
    chains = ctx.cfg["joint"]["enabled"]
    jobs = [candidate.job_for(ctx, cand, part, cells, nncf_args, data, inner,
                              chain=chains and "pipeline" in units[cand.name] and set(candidate.SINGLE) <= set(part))
            for cand, part in plan]
    if not executor.in_process(outer, len(jobs)):
        log.info("%d candidate jobs side by side, each with its PTQ grid inside", len(jobs))
    done = executor.run_cells(candidate.run_candidate, jobs, outer, log)
    shutil.rmtree(ctx.out / ".cells", ignore_errors=True)   # the grid cells' attempt markers
    bench, joint, vs_fp32, selection, prov, ran = {}, {}, {}, {}, {}, {}
    for cand in cands:
        res = candidate.merge(ctx, r, cand, [x for (c, _), x in zip(plan, done) if c is cand])
        files = {a["file"] for a in res["artifacts"]}
        ctx.artifacts[:] = [a for a in ctx.artifacts if a["file"] not in files] + res["artifacts"]
        prov[cand.name], ran[cand.name] = res["provenance"], res["ran"]
        if res["selection"]:
            selection[cand.name] = res["selection"]
        if "joint" in res:
            joint[cand.name] = res["joint"]
        if res["best_pipeline"]:
            vs_fp32[cand.name] = res["vs_fp32"]
            bench[cand.name] = _bench(ctx, r, cand, res["best_pipeline"], res["fast_eval"])
            log.info("latency %s: %s", cand.name, json.dumps(bench[cand.name]["1_thread"]))
        r.forget(cand.name)   # its detections: every interval of the candidate is computed
    measure.resolve_gaps(r.rows, ctx.out, r.test, proto, ctx.cfg["intervals"]["resolution_draws"])
    summary = table.write(r.rows, ctx.out)
    metrics = {"rows": r.rows, "summary": summary, "benchmark": bench, "joint_vs_independent": joint,
               "int8_vs_fp32": vs_fp32, "selection": selection, "candidates": prov,
               "splits": {"reported": REPORTED, "selected_on": SELECT,
                          "n_images": {"test": _n(r.test, proto), "val": _n(r.val, proto)}},
               "grid": [c.name for c in cells], "executor": ran,   # where the cells ran (results do not depend on it)
               # shared/calibration.py; each PTQ cell draws its images with its own seed (cells' names end _s<seed>)
               "calibration": calibration.describe(ctx.config["calibration"], len(r.calib_split), ctx.seed),
               "max_sim_onnx_gap": max((x["max_gap"] for x in r.rows), default=0.0),
               "sim_onnx_ap_gap": measure.gap_summary(r.rows)}
    (ctx.out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n")
    return {"metrics": {k: v for k, v in metrics.items() if k != "rows"}}


def spread(spec: dict, n_cands: int) -> tuple[dict, dict]:
    """(where the candidate jobs run, where each one's PTQ cells run): the jobs side by side when the
    local executor has several workers and there are several jobs, their cells then inside
    them; else the jobs here, one by one, and their cells on ``spec``.  Worker counts are
    resolved now, before a candidate's thread limit would make 0 mean one."""
    local = {**spec, "workers": executor.local_workers(spec)} if spec["kind"] == "local" else spec
    if spec["kind"] == "local" and n_cands > 1 and local["workers"] > 1:
        return local, {**local, "workers": 1}
    return {"kind": "local", "workers": 1, "cpus_per_cell": spec["cpus_per_cell"]}, local


def _bench(ctx, r, cand, best_row: dict, fast_eval: dict) -> dict:
    """Latency of the candidate's FP32 and best INT8 pipeline files (and ONNX Runtime's own static INT8
    of the FP32 file), timed here with nothing else running."""
    cfg = ctx.cfg
    # the pipeline's own input images: no upstream net runs for them (shared.calibration.inputs)
    calib = [b.numpy() for b in r.calib("pipeline", ctx.seed, 1, cfg["bench"]["ort_calibration_images"])]
    stem = ctx.out / folder_name(cand.name) / "pipeline"
    int8 = ctx.out / best_row["onnx_file"]
    ref = onnx_io.ort_static_int8(stem / "fp32.onnx", calib, ctx.out / ".bench" / f"{folder_name(cand.name)}_ort_int8.onnx")
    return {**onnx_io.bench_pair(stem / "fp32.onnx", int8, calib[0], cfg["bench"]["runs"], ref),
            # this candidate's FP32 (a pruned candidate: its own pruned widths)
            "fp32_bytes": onnx_io.weight_bytes(stem / "fp32.onnx"),
            # the rows are measured in accuracy_mode (exact: fused + x64quantprecision, the biases
            # canonical); "fast" is what a default session (no option) scores
            "int8_accuracy_mode": accuracy_mode(int8), "int8_fused_kernels_eval": {"fast": fast_eval},
            "cpu": cpu_int8_features(), "split": REPORTED, "int8_selected_on": SELECT,
            "int8_bytes": best_row["export"], "int8_variant": best_row["method"]}


def _n(split, proto) -> int:
    return len(split) if proto.limit is None else min(proto.limit, len(split))

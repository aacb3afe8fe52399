"""``run(ctx)``: prune the trained chain (independent and joint), sparsify it, run the EDGY configs.

Outputs (``<run>/prune/``):
  variants/<name>/        per variant: enhancer/denoiser/yunet/pipeline.onnx, the model bundle (bundle.json + state dicts), metrics.json
  table.csv, table.md     variant x (AP, NME, IoU, missed, PSNR, params, MACs, bytes, reductions)
  metrics.json            everything, plus the benchmark: joint vs FP32 and joint vs independent,
                          and the accuracy-budget search's probes (``budget``)

With ``prune.budget.max_ap_drop`` set, the budget search (``variants.budget_joint``) runs on the
dataset's *val* split (``shared.selection.check_selection_split``: never on test) and its
accepted chain is exported and measured on test like the others, as ``joint_budget_<ratio tag>``
(with ``budget.twin`` also ``independent_budget_<ratio tag>``, the independent chain at that ratio).
The stage metrics' ``aliases`` name them (``budget``, ``twin``): quantize's ``kind: "@budget"``.

Every variant but the budget search is an executor cell (``stages/prune/cells.py``): built side by
side on the local executor, each with ``executor.cpus_per_cell`` threads; the rows keep plan order.
"""
from __future__ import annotations

import json
import time
import zlib

import torch

from shared import executor
from shared.config import REPO, ConfigError
from shared.data import DataError, load_split, to_float
from shared.evaluation import Protocol, evaluate_detection
from shared.models.restoration import DIVISOR
from shared.selection import check_selection_split
from stages.prune import cells, measure, table, variants
from shared.edgy import load_edgy


def load_fp32(train_dir):
    """The train stage's bundle (CPU, eval; ``base_config`` set, so pruned copies save as bundles)."""
    from shared.models.bundle import load_bundle
    return load_bundle(train_dir)[0]


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for but this container sees no GPU (set device: auto or cpu)")
    return torch.device("cuda" if requested in ("auto", "cuda") and torch.cuda.is_available() else "cpu")


def plan(cfg: dict) -> list[dict]:
    """Every variant to build, in order: (kind, name, arguments)."""
    jobs = []
    _choices(cfg["modes"], ("independent", "joint"), "prune.modes")
    _choices(cfg["sparsity"]["modes"], ("magnitude_global", "magnitude_local", "rb"), "prune.sparsity.modes")
    weights = variants.check_weights(cfg["joint"]["weights"])
    crop = cfg["finetune"]["crop"]
    if crop is not None and crop % DIVISOR:
        raise ConfigError(f"prune.finetune.crop: {crop} must be a multiple of {DIVISOR} (RestorationNet's input divisor)")
    for ratio in cfg["ratios"]:
        if not 0 < ratio < 1:
            raise ConfigError(f"prune.ratios: {ratio} must be in (0, 1)")
        if "independent" in cfg["modes"]:
            jobs.append({"kind": "independent", "name": f"independent_{cfg['importance']}_{variants.tag(ratio)}",
                         "ratio": ratio, "importance": cfg["importance"]})
        if "joint" in cfg["modes"]:
            for w in weights:
                suffix = f"_{variants.wtag(w)}" if len(weights) > 1 else ""
                jobs.append({"kind": "joint", "name": f"joint_{cfg['importance']}_{variants.tag(ratio)}{suffix}",
                             "ratio": ratio, "importance": cfg["importance"], "weights": w})
    b = cfg["budget"]
    if b["max_ap_drop"] is not None:
        if not 0 < b["lo"] <= b["hi"] < 1:
            raise ConfigError(f"prune.budget: need 0 < lo <= hi < 1, got lo={b['lo']}, hi={b['hi']}")
        jobs.append({"kind": "budget", "name": "joint_budget", "importance": cfg["importance"],
                     "weights": weights[0]})
    for mode in cfg["sparsity"]["modes"]:
        for ratio in cfg["sparsity"]["ratios"]:
            jobs.append({"kind": "sparse", "name": f"nncf_{mode}_{variants.tag(ratio)}", "mode": mode,
                         "ratio": ratio, "weights": weights[0]})
    for path in cfg["edgy"]:
        full = REPO / path
        for i, job in enumerate(load_edgy(full)):
            stem = f"edgy_{full.stem}" + (f"_{i}" if i else "")
            if job["kind"] == "structured":
                jobs.append({"kind": "joint", "name": stem, "ratio": job["ratio"], "importance": job["importance"],
                             "weights": weights[0], "steps": job["steps"], "keep_first_last": job["keep_first_last"],
                             "edgy": {"file": path, **job}})
            elif job["kind"] == "sparsity":
                jobs.append({"kind": "sparse", "name": stem, "mode": job["mode"], "ratio": job["ratio"],
                             "weights": weights[0], "steps": job["steps"], "init": job.get("init", 0.0),
                             "lr_mult": job.get("lr_multiplier"), "edgy": {"file": path, **job}})
            else:
                jobs.append({"kind": "recorded", "name": stem, "edgy": {"file": path, **job}})
    return jobs


def _choices(values, allowed, key) -> None:
    for i, v in enumerate(values):
        if v not in allowed:
            raise ConfigError(f"{key}[{i}]: {v!r} is not one of {list(allowed)}")


def build(job: dict, fp32, env: variants.Env):
    k = job["kind"]
    if k == "independent":
        return variants.independent(fp32, job["ratio"], job["importance"], env, job["name"])
    if k == "joint":
        return variants.joint(fp32, job["ratio"], job["importance"], job["weights"], env, job["name"],
                              job.get("steps"), job.get("keep_first_last"))
    return variants.sparse(fp32, job["mode"], job["ratio"], job["weights"], env, job["name"], job.get("steps"),
                           job.get("init", 0.0), job.get("lr_mult"))


def run_budget(job: dict, fp32, env: variants.Env, dataset_dir, proto: Protocol):
    """The accuracy-budget search, every probe scored on the val split; (chain or None, info)."""
    split = check_selection_split("val")
    try:
        val = load_split(dataset_dir, split)
    except DataError as e:
        raise ConfigError(f"prune.budget needs the dataset's val split (dataset.splits.val > 0): {e}") from None

    def val_ap(pipe) -> float:
        return float(evaluate_detection(pipe.cpu().eval(), val, proto)["ap"])
    model, info = variants.budget_joint(fp32, job["importance"], job["weights"], env, job["name"], val_ap, val_ap(fp32))
    return model, {**info, "budget": {**info["budget"], "split": split, "n_images": len(val)}}


def run(ctx) -> dict:
    cfg, log = ctx.cfg, ctx.log
    if ctx.input_manifests["train"].get("skipped"):
        return {"skipped": f"needs the train stage's models (train was skipped: {ctx.input_manifests['train']['skipped']})",
                "metrics": {}}
    jobs = plan(cfg)  # config mistakes (EDGY files included) fail before any work
    data, train_dir = ctx.input("dataset"), ctx.input("train")
    train, test, calib = (load_split(data, s) for s in ("train", "test", "calibration"))
    fp32 = load_fp32(train_dir)
    size = tuple(fp32.input_size)
    proto = Protocol.from_config(ctx.config)
    env = variants.Env(train, calib, size, cfg, ctx.seed, log, pick_device(ctx.config["device"]))
    probe = torch.from_numpy(to_float(test.images(proto.variant, 1)))
    opset, vdir = cfg["export"]["opset"], ctx.out / "variants"
    log.info("%d variants to build: %s", len(jobs), ", ".join(j["name"] for j in jobs))

    # the FP32 chain: evaluated here by the same protocol; its ONNX files are the train stage's
    results = {"fp32": measure.measure("fp32", fp32, test, proto, size, vdir / "fp32", opset, probe,
                                       {"mode": "fp32", "onnx_from": "train"}, save=False)}
    train_onnx = train_dir / "pipeline.onnx"
    if train_onnx.exists():
        data = train_onnx.read_bytes()
        results["fp32"]["row"].update(bytes=len(data), bytes_deflate=len(zlib.compress(data, 6)))
    rows = [{**results["fp32"]["row"], "mode": "fp32", "ratio": 0.0, "weight_sparsity": 0.0}]
    recorded, budget, aliases = {}, None, {}
    built = _run_cells(ctx, [j for j in jobs if j["kind"] not in ("recorded", "budget")], train_dir, vdir)
    for job in jobs:
        if job["kind"] == "recorded":
            recorded[job["name"]] = job["edgy"]
            log.info("%s: %s", job["name"], job["edgy"]["note"])
            continue
        if job["kind"] == "budget":
            torch.manual_seed(ctx.seed)
            t0 = time.time()
            model, info = run_budget(job, fp32, env, ctx.input("dataset"), proto)
            budget = info["budget"]
            if model is None:
                log.info("%s: no ratio in [%.2f, %.2f] keeps the val AP drop within %.3f; nothing exported",
                         job["name"], budget["lo"], budget["hi"], budget["max_ap_drop"])
                continue
            if cfg["budget"]["twin"]:  # the independent chain at the accepted ratio, built next
                jobs.insert(jobs.index(job) + 1, {
                    "kind": "independent", "name": f"independent_budget_{variants.tag(info['ratio'])}",
                    "ratio": info["ratio"], "importance": job["importance"], "alias": "twin"})
            job = {**job, "name": f"joint_budget_{variants.tag(info['ratio'])}", "ratio": info["ratio"],
                   "alias": "budget"}
            info = {**info, "seconds": round(time.time() - t0, 1)}
            res = measure.measure(job["name"], model, test, proto, size, vdir / job["name"], opset, probe, info,
                                  per_model=cfg["export"]["per_model"])
        elif job["name"] in built:
            res = built[job["name"]]
        else:   # the budget's twin, planned once the search has answered: a cell of its own
            res = _run_cells(ctx, [job], train_dir, vdir)[job["name"]]
        info = {k: v for k, v in res.items() if k not in ("row", "cost", "eval", "onnx")}
        results[job["name"]] = res
        if "alias" in job:
            aliases[job["alias"]] = job["name"]
        rows.append({**res["row"], "mode": info["mode"], "ratio": job["ratio"],
                     "weight_sparsity": info.get("weight_sparsity")})
        log.info("%s: AP %.3f (FP32 %.3f), MACs -%.1f %%, %.0f s", job["name"], res["row"]["ap"], rows[0]["ap"],
                 100 * (1 - res["row"]["macs"] / rows[0]["macs"]), info["seconds"])
    csv_path, md_path = table.write(rows, ctx.out)
    log.info("table: %s\n%s", csv_path.name, md_path.read_text())
    for name, res in results.items():
        measure.record(ctx, f"variants/{name}", res)
    metrics = {"table": table.with_reductions(rows), "benchmark": benchmark(table.with_reductions(rows)),
               "edgy_recorded": recorded, "budget": budget, "aliases": aliases, "device": env.device.type,
               "variants": {k: {kk: v for kk, v in r.items() if kk != "eval"} for k, r in results.items()}}
    (ctx.out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    return {"metrics": {"table": metrics["table"], "benchmark": metrics["benchmark"], "edgy_recorded": recorded,
                        "budget": budget, "aliases": aliases}}


def _run_cells(ctx, jobs: list[dict], train_dir, vdir) -> dict[str, dict]:
    """The independent variants, side by side on the local executor (stages/prune/cells.py):
    {name: metrics}.  Each cell computes with ``executor.cpus_per_cell`` threads wherever it runs."""
    if not jobs:
        return {}
    spec = executor.local(ctx.config["executor"], ctx.log)
    t0 = time.time()
    cell_jobs = [cells.VariantJob(j, train_dir, ctx.input("dataset"), vdir / j["name"], ctx.config) for j in jobs]
    out = executor.run_cells(cells.variant_cell, cell_jobs, spec, ctx.log)
    ctx.log.info("%d variant(s) built in %.0f s", len(jobs), time.time() - t0)
    return {j["name"]: res for j, res in zip(jobs, out)}


def benchmark(rows: list[dict]) -> dict:
    """Joint vs FP32 and joint vs independent at the smallest ratio whose joint chain has >= 50 % fewer MACs."""
    fp32 = rows[0]
    joint = sorted((r for r in rows if r["mode"] == "joint" and r["variant"].startswith("joint_")
                    and r["macs_reduction"] >= 0.5), key=lambda r: r["ratio"])
    if not joint:
        return {"note": "no joint variant reaches a 50 % MAC reduction at the configured ratios"}
    j = joint[0]
    ind = next((r for r in rows if r["mode"] == "independent" and r["ratio"] == j["ratio"]), None)
    out = {"ratio": j["ratio"], "joint": {k: j[k] for k in ("variant", "ap", "nme", "psnr", "macs_reduction")},
           "fp32_ap": fp32["ap"], "joint_minus_fp32_ap": j["ap"] - fp32["ap"]}
    if ind:
        out["independent"] = {k: ind[k] for k in ("variant", "ap", "nme", "psnr", "macs_reduction")}
        out["joint_minus_independent_ap"] = j["ap"] - ind["ap"]
    return out

"""``run(ctx)``: quantize the FP32 ONNX models for ESP-DL, simulate their accuracy, budget the
ESP32-S3 memory, generate the ESP-IDF project.

Outputs (``<run>/esp/``):
  <candidate>/<model>/<variant>.espdl .info .ppq.json .ppq.log   esp-ppq exports (variant: int8 / int16 / mixed)
  <candidate>/<model>/int8_error_report.csv                  per layer NSR (layerwise, graphwise, marginal)
  <candidate>/<model>/mixed_int16_layers.json                layers the rule sent to int16
  accuracy.csv / accuracy.md                                  simulated (TorchExecutor) vs FP32 (ONNX Runtime)
  memory.csv / memory.md / memory.json                        budget per model and for the chain
  <candidate>/chain/<variant>/chain.json                     the chain's models in run order (the folder its record names)
  firmware/                                                   ESP-IDF project (stages/esp/firmware.py)

The work runs as executor cells (stages/esp/cells.py): each candidate's models side by side (quantize,
measure), then each chain (the three nets in series); the rows and records are added here in one order.

Every model file written is described by an artifact record (``ctx.artifact``, shared/artifacts.py):
each .espdl (role, int precision, simulated accuracy, device bytes), each chain
of .espdl models run one after the other (role ``chain``) and the copies embedded in firmware/.
"""
from __future__ import annotations

import json
import shutil

import torch

from shared import calibration, executor
from shared.data import load_split
from shared.evaluation import Protocol, as_fn
from stages.esp import cells, firmware
from stages.esp.evaluate import rows_for, write_tables
from stages.esp.graph import check_ops, cut_before
from stages.esp.memory import budget, chain_budget
from stages.esp.quantize import error_report, make_setting, quantize, select_int16, with_followers
from stages.esp.tables import write_memory

CHAIN = ("enhancer", "denoiser", "yunet")


def resolve_candidates(ctx) -> dict:
    """{name: folder of the candidate's ONNX files}: 'train', 'prune/<variant>' (the prune stage's
    variants/<variant>/, e.g. prune/joint_l2_r50) or any '<stage>/<subdir>'."""
    out = {}
    for c in ctx.cfg["candidates"]:
        stage, _, sub = c.partition("/")
        root = ctx.input(stage)  # raises naming stages/pipeline.yaml when not a dependency
        if ctx.input_manifests[stage].get("skipped"):
            continue
        src = root / sub if sub else root
        if sub and not src.is_dir() and (root / "variants" / sub).is_dir():
            src = root / "variants" / sub
        if not src.is_dir():
            have = sorted(d.name for d in (root / "variants").iterdir() if d.is_dir()) if (root / "variants").is_dir() else []
            raise FileNotFoundError(f"esp.candidates: '{c}': no folder {src}"
                                    + (f"; {stage} variants: {', '.join(have)}" if have else ""))
        out[c.replace("/", "_")] = src
    return out


def prepare(src, models, cut: dict, out_dir, log) -> dict:
    """{model: ONNX path ready for esp-ppq} (cut where configured, op support checked)."""
    ready = {}
    for m in models:
        p = src / f"{m}.onnx"
        if not p.exists():
            raise FileNotFoundError(f"{p}: missing ({m}.onnx of this esp.candidates entry)")
        if m in cut:
            out_dir.mkdir(parents=True, exist_ok=True)
            dst = out_dir / f"{m}_cut.onnx"
            outs = cut_before(p, dst, cut[m])
            log.warning("%s cut before node '%s' (new outputs %s): the rest runs off the chip", m, cut[m], outs)
            p = dst
        ops = check_ops(p, m)
        log.info("%s: ops %s all run on ESP-DL", p.name, ", ".join(ops))
        ready[m] = p
    return ready


def quantize_model(m, path, batches, cfg, qdir, log) -> dict:
    """{variant: quantized graph} for the configured variants; writes files and the error report."""
    target, algo, mix = cfg["target"], cfg["calibration"]["algorithm"], cfg["mixed"]
    graphs = {}
    variants = cfg["variants"]
    if "int8" in variants or "mixed" in variants:
        graphs["int8"], _ = quantize(path, qdir, "int8", batches, 8, make_setting(8, algo, [], target), target, log)
    if "mixed" in variants:
        rows = error_report(graphs["int8"], batches, mix["analysis_steps"], qdir / "int8_error_report.csv",
                            layerwise=mix["measure"] == "layerwise" or mix["layerwise"])
        picked = select_int16(rows, mix["nsr_threshold"], mix["max_layers"], mix["measure"])
        ops = with_followers(graphs["int8"], picked)
        (qdir / "mixed_int16_layers.json").write_text(json.dumps(
            {"measure": mix["measure"], "threshold": mix["nsr_threshold"], "selected": picked, "int16_ops": ops},
            indent=2) + "\n")
        log.info("%s mixed: %d of %d layers above NSR %.3f -> int16 %s", m, len(picked), len(rows),
                 mix["nsr_threshold"], picked[:4])
        if ops:
            graphs["mixed"], _ = quantize(path, qdir, "mixed", batches, 8, make_setting(8, algo, ops, target),
                                          target, log)
        else:
            for ext in ("espdl", "info", "ppq.json"):
                shutil.copy(qdir / f"int8.{ext}", qdir / f"mixed.{ext}")
            graphs["mixed"] = graphs["int8"]
    if "int16" in variants:
        graphs["int16"], _ = quantize(path, qdir, "int16", batches, 16, make_setting(16, algo, [], target), target, log)
    return {v: graphs[v] for v in variants}


MODELS, VARIANTS = ("enhancer", "denoiser", "yunet", "pipeline"), ("int8", "int16", "mixed")


def check_lists(cfg: dict) -> None:
    for key, known in (("models", MODELS), ("variants", VARIANTS)):
        bad = [v for v in cfg[key] if v not in known]
        if bad or not cfg[key]:
            raise ValueError(f"esp.{key}: {bad or 'empty'} not allowed; choose from {', '.join(known)}")


def run(ctx) -> dict:
    cfg, log = ctx.cfg, ctx.log
    check_lists(cfg)
    torch.set_num_threads(cfg["threads"])
    candidates = resolve_candidates(ctx)
    if not candidates:
        return {"skipped": "needs the FP32 ONNX models of " + ", ".join(cfg["candidates"]) +
                "; the upstream stage was skipped: run it (`invoke stage train`)", "metrics": {}}
    proto = Protocol.from_config(ctx.config)
    data = ctx.input("dataset")
    cal_split = load_split(data, "calibration")
    spec = executor.local(ctx.config["executor"], log)
    jobs, onnx_by_cand = [], {}
    for cand, src in candidates.items():
        onnx_files = onnx_by_cand[cand] = prepare(src, cfg["models"], cfg["cut"], ctx.out / cand, log)
        feeds = {m: src / f"{m}.onnx" for m in ("enhancer", "denoiser") if (src / f"{m}.onnx").exists()}
        x01 = calibration.inputs(cal_split, ctx.config["calibration"], proto.variant, ctx.seed, onnx_files,
                                 {m: as_fn(p) for m, p in feeds.items()})   # the FP32 chain feeds each net
        jobs += [cells.ModelJob(cand, m, path, calibration.scaled(x01[m], m), m not in cfg["cut"], ctx.out / cand / m,
                                ctx.out / ".graphs" / cand / m, data, ctx.config) for m, path in onnx_files.items()]
    jobs.sort(key=lambda j: j.model != "pipeline")   # the largest graph first: the others fill the other workers
    done = dict(zip(((j.cand, j.model) for j in jobs), executor.run_cells(cells.model_cell, jobs, spec, log)))
    chains = _chain_jobs(candidates, onnx_by_cand, done, cfg, data, ctx.config)
    chain_res = dict(zip(chains, executor.run_cells(cells.chain_cell, list(chains.values()), spec, log)))
    acc_rows, mem_rows, summary, files = [], [], {}, []
    for cand in candidates:
        res = {m: done[(cand, m)] for m in onnx_by_cand[cand]}
        fp32 = {m: r["fp32"] for m, r in res.items() if r["fp32"] is not None}
        secs = sum(r["seconds"] for r in res.values())
        if (cand, None) in chain_res:
            fp32["chain"] = chain_res[(cand, None)]["metrics"]
        for v in cfg["variants"]:
            rows = []
            for m, r in res.items():
                got = r["variants"][v]
                fp = got["footprint"]
                row = budget(m, fp["weights_bytes"], fp["peak_activation_bytes"], got["size"], cfg["board"])
                row.update(candidate=cand, variant=v, peak_at=fp["peak_at"], layers_by_bits=fp["computing_layers_by_bits"])
                rows.append(row)
                if m in cfg["cut"]:   # not measured (the rest runs off the chip): its file and bytes only
                    record(ctx, file_entry(f"{cand}/{m}/{v}.espdl", m, v, None, row), v,
                           label=f"cut before node '{cfg['cut'][m]}'")
                if m in fp32:
                    acc_rows += rows_for(cand, m, v, got["metrics"], fp32[m])
                    files.append(record(ctx, file_entry(f"{cand}/{m}/{v}.espdl", m, v, got["metrics"], row), v))
            chain_rows = [r for r in rows if r["model"] in CHAIN]
            if len(chain_rows) == len(CHAIN):
                rows.append({**chain_budget(chain_rows, cfg["board"]), "candidate": cand, "variant": v, "peak_at": "",
                             "layers_by_bits": {}})
            key = _chain_key(cand, v, res)
            if "chain" in fp32 and key in chain_res:
                got = chain_res[key]["metrics"]
                acc_rows += rows_for(cand, "chain", v, got, fp32["chain"])
                files.append(record(ctx, file_entry(f"{cand}/chain/{v}", "chain", v, got, rows[-1] if len(
                    chain_rows) == len(CHAIN) else {}, models=[f"{cand}/{m}/{v}.espdl" for m in CHAIN]), v))
            mem_rows += rows
        secs += sum(x["seconds"] for k, x in chain_res.items() if k[0] == cand)
        summary[cand] = {"seconds": round(secs, 1), "fp32": fp32}
        log.info("candidate %s: %.1f s of cells", cand, secs)
    shutil.rmtree(ctx.out / ".graphs", ignore_errors=True)
    write_tables(acc_rows, ctx.out)
    write_memory(mem_rows, cfg["board"], ctx.out)
    fw = _firmware(ctx, candidates, mem_rows)
    metrics_out = {
        "accuracy": {f"{r['candidate']}/{r['model']}/{r['variant']}/{r['metric']}": round(r["value"], 5)
                     for r in acc_rows},
        "fp32": {c: s["fp32"] for c, s in summary.items()},
        "memory": {f"{r['candidate']}/{r['model']}/{r['variant']}": {k: r[k] for k in (
            "weights_bytes", "peak_activation_bytes", "flash_bytes", "activations_in", "pass")} for r in mem_rows},
        "board": cfg["board"], "firmware": fw, "seconds": {c: s["seconds"] for c, s in summary.items()},
        "files": files,
        "calibration": calibration.describe(ctx.config["calibration"], len(cal_split), ctx.seed),
    }
    (ctx.out / "metrics.json").write_text(json.dumps(metrics_out, indent=2, default=float) + "\n")
    return {"metrics": metrics_out}


def _chain_key(cand: str, variant: str, res: dict) -> tuple:
    """The chain of ``variant``'s graphs, named by the variants whose graphs they are (mixed without an
    int16 layer is int8's graph: a chain of the same three graphs is measured once)."""
    return cand, tuple(res[m]["variants"][variant]["same_as"] or variant for m in CHAIN)


def _chain_jobs(candidates: dict, onnx_by_cand: dict, done: dict, cfg: dict, data, config: dict) -> dict:
    """{(cand, None): the FP32 chain, (cand, variants): each distinct quantized chain} of every candidate
    that has the three nets uncut."""
    out = {}
    for cand in candidates:
        files = onnx_by_cand[cand]
        if not all(m in files and m not in cfg["cut"] for m in CHAIN):
            continue
        res = {m: done[(cand, m)] for m in files}
        outputs = tuple(tuple(res[m]["outputs"]) for m in CHAIN)
        out[(cand, None)] = cells.ChainJob(cand, None, tuple(files[m] for m in CHAIN), outputs, data, config)
        for v in cfg["variants"]:
            key = _chain_key(cand, v, res)
            if key not in out:
                out[key] = cells.ChainJob(cand, v, tuple(res[m]["variants"][v]["graph"] for m in CHAIN), outputs,
                                          data, config)
    return out


ROLES = {"enhancer": "enhancer", "denoiser": "denoiser", "yunet": "detector", "pipeline": "pipeline", "chain": "chain"}
BITS = {"int8": "int8", "int16": "int16", "mixed": "int8+int16"}   # the record's precision (shared/artifacts.py)
PRECISION = {v: f"{b} (ESP-DL)" for v, b in BITS.items()}         # metrics.json's wording


def file_entry(rel: str, model: str, variant: str, got: dict, budget_row: dict, models=None) -> dict:
    """One simulated ESP-DL artifact in the convention the report reads (``file`` + ``eval``): its
    accuracy by the shared protocol, its weight bytes on the device and its flash bytes."""
    e = {"file": rel, "role": ROLES[model], "precision": PRECISION[variant], "eval": got,
         "weight_bytes": budget_row.get("weights_bytes"), "bytes": budget_row.get("flash_bytes")}
    return {**e, "models": models} if models else e


def record(ctx, entry: dict, variant: str, label: str | None = None) -> dict:
    """Describe the file of a :func:`file_entry` with an artifact record (role, int precision, its
    ``eval`` as metrics, its byte counts as cost); returns the entry.  A chain's entry names
    ``<cand>/chain/<variant>``: that folder is written here with ``chain.json`` (its models in run
    order) and recorded with role ``chain``, in the chain ``<cand>/chain``."""
    rel = entry["file"]
    chain = None
    if entry["role"] == "chain":
        folder = ctx.out / rel
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "chain.json").write_text(json.dumps({"models": entry.get("models") or [], "order": list(CHAIN),
                                                       "variant": variant}, indent=2) + "\n")
        chain = rel.rsplit("/", 1)[0]
    cost = {k: entry[k] for k in ("params", "macs", "bytes", "weight_bytes", "latency_ms") if entry.get(k) is not None}
    ctx.artifact(rel, entry["role"], BITS[variant], chain=chain, metrics=entry.get("eval"),
                 cost=cost or None, label=label)
    return entry


def _firmware(ctx, candidates: dict, mem_rows: list[dict]) -> dict:
    cfg = ctx.cfg
    fw = cfg["firmware"]
    cand = (fw["candidate"] or cfg["candidates"][0]).replace("/", "_")
    if cand not in candidates:
        raise KeyError(f"esp.firmware.candidate: '{cand}' is not among the candidates run ({', '.join(candidates)})")
    variant = fw["variant"] if fw["variant"] in cfg["variants"] else cfg["variants"][0]
    names = [m for m in CHAIN if m in cfg["models"]] or list(cfg["models"])
    models = {m: ctx.out / cand / m / f"{variant}.espdl" for m in names}
    chain = [r for r in mem_rows if r["candidate"] == cand and r["variant"] == variant and r["model"] == "chain"]
    resident = bool(chain and chain[0]["pass"])
    summary = firmware.generate(ctx.out / "firmware", models, cfg["board"], fw["runs"], resident, cand, variant)
    for m, src in models.items():
        dst = ctx.out / "firmware" / "main" / "models" / f"{m}.espdl"
        ctx.artifact(dst, ROLES[m], BITS[variant], cost={"bytes": dst.stat().st_size},
                     label=f"embedded in the ESP-IDF project: copy of {src.relative_to(ctx.out).as_posix()}")
    return summary

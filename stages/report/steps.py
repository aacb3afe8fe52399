"""``run(ctx)``: every artifact of the run by one protocol, host latency, tables, plots, one HTML page.

Outputs (``<run>/report/``):
  results.csv, results.md     one row per artifact (+ one per chain); see stages/report/table.py
  report.html                 self-contained (plots embedded as base64 PNG)
  ap_vs_bytes.png, ap_vs_latency.png, strip.png, ptq_grid.png, joint_vs_independent.png,
  compressed_vs_fp32.png      (when data exist; bootstrap 95 % whiskers where the metrics carry intervals)
  photos.png                  the photos stage's figure, copied (real photos, outside the training domain)
  results.json                rows, chains, skipped, the JMMC table, photos, seeds, intervals, as data
  README_snippet.md           the whole-system and JMMC tables + plot links for README.md (`invoke readme`)

The JMMC table (stages/report/jmmc.py) and the AP intervals come from one detection pass per system:
the artifacts it needs are evaluated with their per-image detections kept.  Choices upstream are made on
the validation split; every number here is from the test split.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm import tqdm

from shared.data import load_split, to_float
from shared.evaluation import Protocol
from shared.dag import dependants, load_dag
from stages.report import (accuracy, html, intervals, jmmc, onnx_cost, openvino_rt, photos_section, plots, profile,
                           readme_figures, seeds, strip)
from stages.report.records import discover, groups, is_chain, summary
from stages.report.latency import chain_fps, host_cores, session_call, thread_label, time_rounds
from stages.report.measure import evaluate_chain
from stages.report.table import latency_cells, make_row, markdown, skipped_markdown, skipped_rows, write_csv

JMMC_TITLE = "JMMC: pruned + INT8 chain vs FP32 and the independent twin (test split)"
ROLE_ORDER = {"enhancer": 0, "denoiser": 1, "restoration": 2, "detector": 3, "pipeline": 4, "chain": 5, "other": 6}


def ort_version() -> str:
    import onnxruntime
    return onnxruntime.__version__


def latency_ms(row: dict) -> float | None:
    """Per-frame latency on every core: the artifact's median, or a chain's serial frame time."""
    if row.get("lat_all_ms") is not None:
        return row["lat_all_ms"]
    return 1e3 / row["fps_serial"] if row.get("fps_serial") else None


def model_size(row: dict) -> float | None:
    """What the AP-vs-size plot compares: the weights as stored, the file where that is unknown."""
    return row["weight_bytes"] if row.get("weight_bytes") else row.get("bytes")


def artifact_rows(stages, test, proto, dataset, config, lcfg, log, keep=frozenset()) -> tuple[list[dict], list, dict]:
    """(rows, untimed, measured): ``keep`` names the artifacts evaluated here with their per-image
    detections kept; ``measured`` maps each to its metrics (``dets`` included).  Accuracy first
    (stages/report/accuracy.py: cells side by side), then every file timed, in passes over all (``time_files``)."""
    arts = [a for s in stages for a in s.artifacts]
    onnx_arts = [a for a in arts if a.external is None]
    limit = lcfg["max_artifacts"] or len(arts)
    timed = {a.name for a in onnx_arts[:limit]}
    ov = {a.name for a in onnx_arts if a.role == "pipeline" and a.name in timed} \
        if openvino_rt.available() is None else set()   # whole systems, second runtime
    metrics = accuracy.measure(onnx_arts, keep, ov, test, proto, dataset, config, log)
    lat = time_files([a for a in onnx_arts if a.name in timed], ov, lcfg, log)
    rows, measured = [], {}
    for a in arts:
        if a.external is not None:
            rows.append(external_row(a))
            continue
        c = onnx_cost.cost(a.path)
        m = metrics[a.name]
        if "dets" in m:
            measured[a.name] = m
        ovc = {"ov_ap": m["ov_ap"], **lat[a.name]["ov"]} if a.name in ov else {}
        rows.append(make_row(artifact=a.name, stage=a.stage, group=a.group, role=a.role, precision=a.precision,
                             **{k: m.get(k) for k in ("ap", "nme", "top_box_iou", "missed", "psnr", "ssim")},
                             params=c["params"], macs=c["macs"], weight_bytes=c["weight_bytes"], bytes=c["bytes"],
                             source=m["source"],
                             **latency_cells(lat.get(a.name, {}).get("ort")), **ovc))
    untimed = [a.name for a in onnx_arts[limit:]]
    return rows, ([(f"host latency of {len(untimed)} artifact(s)", "report.latency.max_artifacts is "
                    f"{lcfg['max_artifacts']}: {', '.join(untimed)}")] if untimed else []), measured


def time_files(arts, ov: set, lcfg: dict, log) -> dict:
    """{artifact: {"ort": {thread label: figures}, "ov": {ov_<label>_ms: median}}}: every file, in ONNX Runtime at
    each thread count and (the ``ov`` ones) in OpenVINO, timed in ``report.latency.rounds`` passes over all of
    them (``latency.time_rounds``), nothing else running."""
    calls = {}
    for a in arts:
        for n in lcfg["threads"]:
            calls[(a.name, "ort", n)] = session_call(a.path, a.input_range, n)
            if a.name in ov:
                calls[(a.name, "ov", n)] = openvino_rt.request_call(a.path, n)
    with tqdm(total=len(calls) * lcfg["rounds"], desc="latency", unit="timing") as bar:
        res = time_rounds(calls, lcfg["warmup"], lcfg["runs"], lcfg["min_seconds"], lcfg["rounds"], bar.update)
    out = {a.name: {"ort": {}, "ov": {}} for a in arts}
    for (name, runtime, n), r in res.items():
        if runtime == "ort":
            out[name]["ort"][thread_label(n)] = r
        else:
            out[name]["ov"][openvino_rt.latency_key(n)] = r["median_ms"]
    for name, o in out.items():
        log.info("%s: %s%s", name, ", ".join(f"{k} threads {v['median_ms']:.2f} ms (passes {v['rounds_ms']})"
                                             for k, v in o["ort"].items()),
                 "; OpenVINO " + ", ".join(f"{k} {v:.2f}" for k, v in o["ov"].items()) if o["ov"] else "")
    return out


def external_row(a) -> dict:
    """A non-ONNX artifact (HEF, ESP-DL, ...) its own stage evaluated: its figures, no host timing."""
    e, m = a.external, a.upstream
    size = a.path.stat().st_size if a.path.is_file() else e.get("bytes")
    return make_row(artifact=a.name, stage=a.stage, group=a.group, role=a.role, precision=a.precision,
                    **{k: m.get(k) for k in ("ap", "nme", "top_box_iou", "missed", "psnr", "ssim")},
                    params=e.get("params"), macs=e.get("macs"), weight_bytes=e.get("weight_bytes"), bytes=size,
                    source=f"{a.stage} manifest (not ONNX: not timed on this host)")


def chain_rows(grp, test, proto, lcfg, log, upstream: dict[str, dict]) -> tuple[list[dict], dict]:
    rows, chains = [], {}
    todo = {name: g for name, g in grp.items() if is_chain(g)}
    if not todo or not len(test):
        return rows, chains
    frames_src = to_float(test.images(proto.variant, min(len(test), lcfg["frames"])))
    frames = [frames_src[i % len(frames_src)][None] for i in range(lcfg["frames"])]
    for name, g in todo.items():
        parts = [g["enhancer"], g["denoiser"], g["detector"]]
        m = {**upstream[name], "source": f"{parts[0].stage} manifest"} if name in upstream else \
            evaluate_chain(g, test, proto, log)
        fps = chain_fps([p.path for p in parts], [1.0, 1.0, 255.0], frames, lcfg["warmup"], lcfg["queue"])
        log.info("chain %s: %.1f fps serial, %.1f fps parallel (x%.2f)", name, fps["serial_fps"],
                 fps["parallel_fps"], fps["speedup"])
        chains[name] = fps
        costs = [onnx_cost.cost(p.path) for p in parts]
        precision = "/".join(dict.fromkeys(p.precision for p in parts))
        rows.append(make_row(artifact=f"{name} chain", stage=parts[0].stage, group=name, role="chain",
                             precision=precision,
                             **{k: m.get(k) for k in ("ap", "nme", "top_box_iou", "missed", "psnr", "ssim")},
                             params=sum(c["params"] for c in costs), macs=sum(c["macs"] for c in costs),
                             weight_bytes=sum(c["weight_bytes"] for c in costs),
                             bytes=sum(c["bytes"] for c in costs), fps_serial=fps["serial_fps"],
                             fps_parallel=fps["parallel_fps"], source=m["source"]))
    return rows, chains


def where_time_goes(plan: dict, runs: int, log) -> tuple[dict, float | None]:
    """Per-model ONNX Runtime profiles (1 thread) of the FP32 chain, the JMMC chain and its pruned
    FP32 source (the whole-system files of the JMMC table), and the CPU's MatMul roof."""
    files = {s["key"]: s["artifacts"][0] for s in plan["systems"] if s["kind"] == "pipeline"}
    if not files:
        return {}, None
    peak = profile.peak_gmacs(1)
    out = {}
    for key, a in files.items():
        out[a.name] = {"system": key, **profile.profile(a.path, a.input_range, max(3, runs // 2), 1)}
        log.info("profile %s: %s", a.name, ", ".join(f"{m} {ms:.1f} ms" for m, ms in out[a.name]["by_model_ms"].items()))
    return out, peak


def figures(rows, stages, grp, test, proto, cfg, out: Path, log, ivs: dict) -> tuple[dict, set, list]:
    figs, not_made = {}, []
    for r in rows:
        r["_size"] = model_size(r) / 1024 if model_size(r) else None
        r["_lat"] = latency_ms(r)
        r["_ap_ci"] = ivs["ap"].get(r["artifact"])
    front = plots.tradeoff(rows, "_size", out / "ap_vs_bytes.png",
                           "model size: weights as stored, KiB (file size where unknown), log",
                           "AP@0.5 vs size (Pareto front dashed, on it: black edge)")
    plots.tradeoff(rows, "_lat", out / "ap_vs_latency.png", "host latency per frame, all threads (ms, log)",
                   "AP@0.5 vs host latency (ONNX Runtime, CPU)")
    for r in rows:
        r.pop("_lat")
        r.pop("_size")
        r.pop("_ap_ci")
    why = plots.latency_vs_macs(rows, out / "latency_vs_macs.png")
    if why is None:
        figs["Latency vs MACs"] = out / "latency_vs_macs.png"
    else:
        not_made.append(("plot latency_vs_macs.png", why))
    for cap, f in (("AP vs bytes", "ap_vs_bytes.png"), ("AP vs latency", "ap_vs_latency.png")):
        if (out / f).exists():
            figs[cap] = out / f
        else:
            not_made.append((f"plot {f}", "no artifact with detection metrics"))
    tables = {s.name: s.tables for s in stages}
    q = tables.get("quantize") or []
    q = sorted(q, key=lambda p: ("ptq" not in p.name.lower(), p.name))
    why = plots.ptq_grid(q[0], out / "ptq_grid.png") if q else "no quantize table (the quantize stage has not run)"
    if why is None:
        figs[f"PTQ grid ({q[0].name})"] = out / "ptq_grid.png"
    else:
        not_made.append(("plot ptq_grid.png", why))
    ij = (tables.get("prune") or []) + q
    why = plots.joint_vs_independent(ij, out / "joint_vs_independent.png", ivs["joint"]) if ij or ivs["joint"] \
        else "no prune or quantize table (those stages have not run)"
    if why is None:
        figs["independent vs joint"] = out / "joint_vs_independent.png"
    else:
        not_made.append(("plot joint_vs_independent.png", why))
    why = intervals.diff_figure(ivs["fp32"], out / "compressed_vs_fp32.png",
                                "compressed − FP32 AP@0.5 on the test split (paired bootstrap 95 % intervals)")
    if why is None:
        figs["compressed vs FP32, with intervals"] = out / "compressed_vs_fp32.png"
    else:
        not_made.append(("plot compressed_vs_fp32.png", why))
    chains = {r["group"]: r for r in rows if r["role"] == "chain" and r["group"] in grp}  # ONNX chains only
    n = min(cfg["strip"]["images"], len(test))
    if chains and n:
        ref = next((g for g in chains if g == "train"), next(iter(chains)))
        others = [g for g in chains if g != ref and chains[g]["ap"] is not None]
        best = max(others, key=lambda g: chains[g]["ap"]) if others else None
        variants = {f"{ref} (reference)": strip.chain_panels(grp[ref], test, proto, n)}
        if best:
            variants[f"{best} (best compressed, AP {chains[best]['ap']:.3f})"] = strip.chain_panels(grp[best], test, proto, n)
        else:
            not_made.append(("strip: best compressed variant", "no compressed chain (an enhancer + denoiser + "
                             "detector ONNX group) from prune/quantize/esp/hailo in this run"))
        strip.save_strip(variants, out / "strip.png")
        figs["test images: degraded -> enhanced -> denoised -> detections"] = out / "strip.png"
    else:
        not_made.append(("plot strip.png", "no chain (enhancer + denoiser + detector ONNX files) found"))
    log.info("figures: %s", ", ".join(p.name for p in figs.values()))
    return figs, set(front or []), not_made


def run(ctx) -> dict:
    cfg, log, out = ctx.cfg, ctx.log, ctx.out
    t0 = time.time()
    proto = Protocol.from_config(ctx.config)
    test = load_split(ctx.input("dataset"), "test")
    dag = load_dag()
    mine = {ctx.name} | (set(dependants(dag, ctx.name)) if ctx.name in dag else set())
    stages = discover(ctx.run_dir, list(dag), list(ctx.inputs), mine, ctx.config["eval"], reuse=not cfg["recompute"])
    log.info("upstream: %s", "; ".join(f"{s.name}: {len(s.artifacts)} ONNX" + (" (skipped)" if s.skipped else "")
                                       for s in stages))
    plan = jmmc.plan(stages)
    rows, untimed, measured = artifact_rows(stages, test, proto, ctx.input("dataset"), ctx.config, cfg["latency"],
                                            log, jmmc.keep(plan))
    grp = groups(stages)
    crow, chains = chain_rows(grp, test, proto, cfg["latency"], log,
                              {g: m for s in stages for g, m in s.chain_metrics.items()})
    rows = sorted(rows + crow, key=lambda r: ([s.name for s in stages].index(r["stage"]), r["group"],
                                              ROLE_ORDER.get(r["role"], 9), r["artifact"]))
    jm = jmmc.build(plan, rows, measured, test, proto, cfg["intervals"]["n_boot"], ctx.seed, log)
    del measured       # the detections: only the intervals needed them
    profiles, peak = where_time_goes(plan, cfg["latency"]["runs"], log)
    ivs = intervals.collect(stages, jm)
    figs, front, not_made = figures(rows, stages, grp, test, proto, cfg, out, log, ivs)
    photos = photos_section.collect(stages, out)
    sg = seeds.groups(rows)
    ov_missing = openvino_rt.available()
    skipped = skipped_rows(stages, untimed + not_made + ([("OpenVINO columns", ov_missing)] if ov_missing else []))
    write_csv(rows, out / "results.csv")
    title = f"JMMC report — run '{ctx.config['run']}'"
    md = (f"# {title}\n\n## {JMMC_TITLE}\n\n{jmmc.markdown(jm)}\n## Every artifact\n\n"
          f"{markdown(rows, pareto=front)}\n★ on the AP-vs-bytes Pareto front.\n\n"
          f"## Where the time goes (ONNX Runtime profile)\n\n{profile.markdown(profiles, peak)}\n"
          f"## Seeds: mean ± std\n\n{seeds.markdown(sg)}\n{photos_section.markdown(photos)}\n"
          f"## Skipped\n\n{skipped_markdown(skipped)}")
    (out / "results.md").write_text(md)
    facts = {"run": ctx.config["run"], "test images": min(len(test), proto.limit or len(test)),
             "detection variant": proto.variant, "score / NMS / match IoU": f"{proto.score_thr} / {proto.nms_iou} / "
             f"{proto.iou_thr}", "host cores": host_cores(),
             "latency": f"{cfg['latency']['warmup']} warm-up + {cfg['latency']['runs']} timed runs, threads "
                        f"{cfg['latency']['threads']} (0 = all)",
             "runtimes": f"ONNX Runtime {ort_version()} (shared/ort_runtime.py 'exact' sessions)"
                         + ("" if ov_missing else f"; OpenVINO {openvino_rt.version()} (CPU plugin, LATENCY hint)"),
             "generated": time.strftime("%Y-%m-%d %H:%M:%S")}
    notes = ["MACs and parameters are read from the ONNX graphs (stages/report/onnx_cost.py); BatchNorm is folded "
             "into the convolutions at export, so parameter counts can be below the PyTorch ones.",
             "Weight bytes: the parameter initializers at their stored dtype (INT8 weights 1 B, INT32 biases 4 B); "
             "file bytes add the graph and, for QDQ files, the per-channel scales and zero points. The AP-vs-size "
             "plot uses weight bytes (file bytes for artifacts that do not report them).",
             "Chain rows sum their three models' parameters, MACs and bytes.",
             "Intervals: percentile bootstrap over the test images (shared/metrics/bootstrap.py), 95 %; differences "
             "are paired. Upstream choices are made on the validation split; every number here is from test."]
    top = [f"<h2>{html.esc(JMMC_TITLE)}</h2>" + jmmc.html(jm)]
    bottom = [f"<h2>Where the time goes (ONNX Runtime profile)</h2><pre>{html.esc(profile.markdown(profiles, peak))}</pre>",
              seeds.html(sg), photos_section.html(photos, lambda f: html.image(out / f))]
    page = html.render(title, rows, front, skipped, figs, chains, facts, notes, top, bottom)
    (out / "report.html").write_text(page)
    (out / "results.json").write_text(json.dumps({"rows": rows, "chains": chains, "skipped": skipped,
                                                  "pareto_ap_vs_bytes": sorted(front), "stages": summary(stages),
                                                  "jmmc": jm, "photos": photos, "seeds": sg, "intervals": ivs,
                                                  "profile": {"files": profiles, "peak_gmacs_1_thread": peak}},
                                                 indent=2, default=float) + "\n")
    (out / "README_snippet.md").write_text(readme_figures.snippet(out, ctx.config["run"]))
    final = ctx.run_dir / ctx.name / "report.html"
    host = f" = volumes/{ctx.config['run']}/{ctx.name}/report.html on the host" if str(final).startswith("/work/") else ""
    print(f"report: {final}{host} ({len(rows)} rows, {len(skipped)} skipped items)", flush=True)
    log.info("report in %.1f s: %s", time.time() - t0, final)
    return {"metrics": {"report": str(final), "rows": len(rows), "artifacts": sum(len(s.artifacts) for s in stages),
                        "chains": chains, "pareto_ap_vs_bytes": sorted(front), "skipped": skipped,
                        "best_ap": max((r["ap"] for r in rows if r["ap"] is not None), default=None),
                        "jmmc": {"message": jm["message"], "diffs": jm["diffs"], "split": jm["split"],
                                 "rows": {r["key"]: {k: r[k] for k in ("ap", "ap_lo", "ap_hi", "nme", "psnr", "macs",
                                                                       "weight_bytes")} for r in jm["rows"]}},
                        "report_seconds": round(time.time() - t0, 1)}}

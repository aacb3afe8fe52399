"""``run(ctx)``: the Hailo-8 stage.  Everything before the Dataflow Compiler runs everywhere.

Always (no SDK needed), per chain (the enhancer/denoiser/yunet ONNX files of one upstream folder):
  models.json                       ONNX checks, ops, start node, end nodes, host-side ops
  <chain>/<model>/<model>.alls      model script from the config
  <chain>/<model>/calib.npy         calibration set, NHWC float32 in the model's input units
  accuracy: FP32 ONNX Runtime by the shared protocol (per model and chained)
With the Dataflow Compiler (hailo_sdk_client): HAR, quantized HAR, HEF per model, the chain's
multi-network HEF, emulator accuracy (FP-optimized and quantized) and any DFC downgrade.
With HailoRT and a device: serial / parallel latency, FPS and power (runtime.py).
Without the DFC the manifest says ``skipped: Hailo DFC wheel not found ...`` and keeps the rest.

Every model file written (HAR, quantized HAR, HEF, the chain's multi-network HAR/HEF) and the chain
of quantized models run in the emulator are described by artifact records (``record``; shared/artifacts.py).
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from shared import calibration, units
from shared.data import load_split
from shared.evaluation import Protocol
from stages.hailo import alls, calib, dfclog, evaluate, graph, sdk, wheels

SKIP_NO_DFC = ("Hailo DFC wheel not found in volumes/wheelhouse (get it from Hailo's Developer Zone; "
               "see stages/hailo/README.md)")


def group_candidates(ctx) -> dict[str, dict[str, graph.ModelInfo]]:
    """{chain: {role: ModelInfo}} from hailo.candidates ('<stage>/<path>.onnx'); a chain is one folder
    ('train', 'prune/variants/joint_50' -> chain 'prune_variants_joint_50')."""
    chains: dict[str, dict] = {}
    for entry in ctx.cfg["candidates"]:
        stage, _, rel = entry.partition("/")
        if not rel or not rel.endswith(".onnx"):
            raise graph.GraphError(f"hailo.candidates: '{entry}' must be <upstream stage>/<path>.onnx")
        path = ctx.input(stage) / rel
        role = graph.role_of(path)
        chain = re.sub(r"\W", "_", str(Path(entry).parent))
        name = role if chain == "train" else f"{chain}_{role}"
        if role in chains.setdefault(chain, {}):
            raise graph.GraphError(f"hailo.candidates: two {role} models in '{Path(entry).parent}'")
        chains[chain][role] = graph.inspect(path, name)
    return chains


def feed_scale(role: str, cfg: dict) -> float:
    """Compiled-model input units per protocol unit ([0,1] for restoration, 0..255 for YuNet)."""
    return 1.0 if role == "yunet" else alls.input_scale(role, cfg)


def prepare(ctx, chains: dict, cal_split) -> tuple[dict, dict]:
    """models.json, .alls and calib.npy for every model; returns (summary, {chain: {role: calib}})."""
    summary, arrays = {}, {}
    for chain, group in chains.items():
        t0 = time.time()
        inputs = calib.chain_inputs(cal_split, group, ctx.config, ctx.seed)
        arrays[chain] = {}
        for role, info in group.items():
            mdir = ctx.out / chain / info.name
            arr = calib.to_calib(inputs[role], alls.input_scale(role, ctx.cfg))
            stats = calib.save(arr, mdir / "calib.npy")
            script = alls.generate(info, ctx.cfg, len(arr))
            (mdir / f"{info.name}.alls").write_text(script)
            arrays[chain][role] = arr
            summary[f"{chain}/{info.name}"] = {**info.summary(), "alls": f"{chain}/{info.name}/{info.name}.alls",
                                               "calibration": stats}
            if info.unsupported_ops:
                ctx.log.warning("%s: ops outside the Hailo-8 parser's list: %s", info.path, info.unsupported_ops)
        if len(group) > 1:
            n = min(len(a) for a in arrays[chain].values())
            (ctx.out / chain / f"{chain}_multi.alls").write_text(alls.generate_joined(group, ctx.cfg, n))
        ctx.log.info("chain %s: %d models checked, end nodes found, scripts + calibration written (%.1f s)",
                     chain, len(group), time.time() - t0)
    (ctx.out / "models.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary, arrays


def run(ctx) -> dict:
    cfg, log = ctx.cfg, ctx.log
    ctx.out = ctx.out.resolve()          # the DFC part runs in <out>/dfc: no relative path may be left
    ctx.inputs = {k: Path(v).resolve() for k, v in ctx.inputs.items()}
    data = ctx.input("dataset")
    test, cal_split = load_split(data, "test"), load_split(data, "calibration")
    proto = Protocol.from_config(ctx.config)
    for stage in {c.partition("/")[0] for c in cfg["candidates"]}:
        upstream = (ctx.input_manifests.get(stage) or {}).get("skipped")
        if upstream:
            return {"skipped": f"needs the {stage} stage's ONNX models, but {stage} was skipped ({upstream})"}
    chains = group_candidates(ctx)
    summary, arrays = prepare(ctx, chains, cal_split)

    metrics: dict = {"hw_arch": cfg["hw_arch"], "models": {k: {"end_nodes": v["end_nodes"], "calibration":
                     v["calibration"]["shape"], "unsupported_ops": v["unsupported_ops"]} for k, v in summary.items()},
                     "sdk": {**wheels.check_installed(), "default_pair": list(wheels.load_pairs()["default"])},
                     "chains": {}, "calibration": calibration.describe(ctx.config["calibration"], len(cal_split), ctx.seed)}
    for chain, group in chains.items():
        t0 = time.time()
        ref = evaluate.evaluate(evaluate.onnx_backend(group), test, proto)
        metrics["chains"][chain] = {"fp32_onnx": ref, "fp32_onnx_headline": evaluate.headline(ref)}
        log.info("chain %s FP32 ONNX: %s (%.1f s)", chain, evaluate.headline(ref), time.time() - t0)

    with dfclog.cwd(ctx.out / "dfc"):      # the DFC opens its log file in the cwd when imported
        dfc = sdk.dfc_version()
    if dfc is None:
        (ctx.out / "dfc").rmdir()
        metrics["measured_here"] = ["onnx checks", "end nodes", "model scripts", "calibration sets", "fp32_onnx accuracy"]
        (ctx.out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
        return {"skipped": SKIP_NO_DFC, "metrics": metrics}
    metrics["sdk"]["dfc_imported"] = dfc
    with dfclog.cwd(ctx.out / "dfc"):
        return _with_sdk(ctx, chains, arrays, metrics, test, proto)


def _with_sdk(ctx, chains, arrays, metrics, test, proto) -> dict:
    from stages.hailo import flow, runtime
    cfg, log = ctx.cfg, ctx.log
    found: list[str] = []
    logdir = ctx.out / "dfc"
    emu_proto = evaluate.limited(proto, cfg["emulator"]["limit"])
    on_device = sdk.devices() if sdk.hailort_version() else []
    for chain, group in chains.items():
        dirs = {role: ctx.out / chain / info.name for role, info in group.items()}
        feed = {role: feed_scale(role, cfg) for role in group}
        m = metrics["chains"][chain]
        m["compile"] = {role: flow.build_model(info, (dirs[role] / f"{info.name}.alls").read_text(),
                                               arrays[chain][role], dirs[role], cfg["hw_arch"], logdir, found, log)
                        for role, info in group.items()}
        m["emulator"] = flow.emulated(group, dirs, cfg, feed, test, emu_proto, logdir, found, log)
        if emu_proto.limit != proto.limit:
            m["fp32_onnx_emulator_subset"] = evaluate.evaluate(evaluate.onnx_backend(group), test, emu_proto)
        ref = evaluate.headline(m.get("fp32_onnx_emulator_subset", m["fp32_onnx"]))
        m["emulator_headline"] = {c: evaluate.headline(r) for c, r in m["emulator"].items()}
        m["emulator_delta_vs_fp32"] = {c: evaluate.deltas(ref, h) for c, h in m["emulator_headline"].items()}
        if len(group) > 1:
            m["multi_network"] = flow.build_multi(group, dirs, ctx.out / chain, chain, cfg, arrays[chain], logdir,
                                                 found, log)
        if on_device:
            hefs = {role: dirs[role] / f"{group[role].name}.hef" for role in group}
            m["runtime"] = runtime.measure(hefs, arrays[chain], feed, cfg["runtime"]["frames"], cfg["runtime"]["power"], log)
        record(ctx, chain, group, dirs, m, same_protocol=emu_proto.limit == proto.limit)
    metrics["dfc_downgrades"] = found
    for line in found:
        log.warning("DFC downgrade: %s", line)
    metrics["devices"] = on_device
    metrics["measured_here"] = ["onnx checks", "end nodes", "model scripts", "calibration sets", "fp32_onnx accuracy",
                                "HAR/HEF", "emulator accuracy"] + (["HailoRT latency/FPS/power"] if on_device else [])
    if not on_device:
        metrics["runtime"] = ("not measured: needs HailoRT (hailort wheel) and a Hailo-8 device passed to the "
                              "container (--device /dev/hailo0); see stages/hailo/README.md")
    (ctx.out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    return {"metrics": metrics}


def precision(cfg: dict, roles) -> str:
    """int8, or int8+int16 where the model script sends layers to a16_w16 (alls.generate)."""
    return "int8+int16" if any(cfg["a16_w16"].get(r) for r in roles) else "int8"


def record(ctx, chain: str, group: dict, dirs: dict, m: dict, same_protocol: bool) -> None:
    """Artifact records for what the DFC wrote for one chain (``m``: its metrics entry): per model the
    parsed HAR (fp32), the quantized HAR and the HEF (the emulator's quantized-context accuracy,
    when it ran the run's protocol; bytes; HailoRT mean latency where a device measured it); the
    multi-network HAR/HEF (role pipeline) and, when the three nets were emulated chained, the chain
    (its folder, role ``chain``)."""
    emu = m["emulator"].get("quantized", {})
    acc = " (accuracy: DFC emulator, quantized context" + (")" if same_protocol else
                                                            " on the hailo.emulator.limit subset: metrics.json)")
    lat = (m.get("runtime") or {}).get("serial", {})
    size = lambda p: {"bytes": p.stat().st_size}  # noqa: E731
    for role, info in group.items():
        d, prec = dirs[role], precision(ctx.cfg, [role])
        got = emu.get(role) if same_protocol else None
        ctx.artifact(d / f"{info.name}.har", units.unit(role).name, "fp32", cost=size(d / f"{info.name}.har"),
                     label="parsed HAR (DFC translate)")
        ctx.artifact(d / f"{info.name}_quantized.har", units.unit(role).name, prec, metrics=got,
                     cost=size(d / f"{info.name}_quantized.har"), label="quantized HAR" + acc)
        hef = d / m["compile"][role]["hef"]
        cost = {**size(hef), **({"latency_ms": lat["per_model"][role]["mean_ms"]} if role in lat.get("per_model", {}) else {})}
        ctx.artifact(hef, units.unit(role).name, prec, metrics=got, cost=cost, label="HEF of the quantized HAR" + acc)
    multi = m.get("multi_network") or {}
    if "hef" in multi:
        names = ", ".join(multi["networks"])
        for f in (f"{chain}_multi_quantized.har", multi["hef"]):
            ctx.artifact(ctx.out / chain / f, "pipeline", precision(ctx.cfg, group), cost=size(ctx.out / chain / f),
                         label=f"multi-network ({names}), optimized once; not emulated")
    if "chain" in emu:
        c = emu["chain"]
        got = {**c["detection"], **{k: c["restoration"][k] for k in ("psnr", "ssim", "psnr_input", "ssim_input")
                                    if k in c["restoration"]}}
        ctx.artifact(ctx.out / chain, "chain", precision(ctx.cfg, group), chain=chain,
                     metrics=got if same_protocol else None,
                     cost={"latency_ms": lat["per_frame"]["mean_ms"]} if "per_frame" in lat else None,
                     label=f"quantized HARs of {', '.join(i.name for i in group.values())} chained" + acc)

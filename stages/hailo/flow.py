"""The Dataflow Compiler flow for one chain (runs only where the SDK is installed).

Per model: translate (parse, cut at the end nodes) -> ``<name>.har``; model script + calibration ->
optimize -> ``<name>_quantized.har``; compile -> ``<name>.hef``; emulator accuracy in the
FP-optimized and quantized contexts.  Per chain: the three parsed HARs joined into one
multi-network model, optimized once and compiled to one HEF (``<chain>_multi.hef``).  Every DFC downgrade line is collected (dfclog);
the caller runs all of it inside ``dfclog.cwd(logdir)``, where the DFC keeps its log file.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

from stages.hailo import alls, dfclog, evaluate, post, sdk


def build_model(info, script: str, calib, mdir: Path, hw_arch: str, logdir: Path, found: list, log) -> dict:
    t = {}
    with dfclog.watch(logdir, found):
        t0 = time.time()
        runner = sdk.translate(info, hw_arch)
        sdk.save_har(runner, mdir / f"{info.name}.har")
        t["translate_s"] = time.time() - t0
        log.info("%s: parsed -> %s.har (%.1f s); optimizing on %s calibration", info.name, info.name,
                 t["translate_s"], calib.shape)
        t0 = time.time()
        sdk.optimize(runner, script, calib)
        sdk.save_har(runner, mdir / f"{info.name}_quantized.har")
        t["optimize_s"] = time.time() - t0
        t0 = time.time()
        (mdir / f"{info.name}.hef").write_bytes(sdk.compile_hef(runner))
        t["compile_s"] = time.time() - t0
    log.info("%s: optimized %.1f s, compiled %.1f s -> %s.hef", info.name, t["optimize_s"], t["compile_s"], info.name)
    return {"har": f"{info.name}.har", "quantized_har": f"{info.name}_quantized.har", "hef": f"{info.name}.hef",
            "hef_bytes": (mdir / f"{info.name}.hef").stat().st_size, **{k: round(v, 1) for k, v in t.items()}}


def emulated(group: dict, dirs: dict, cfg: dict, feed: dict, test, proto, logdir: Path, found: list, log) -> dict:
    """Protocol accuracy of the chain in both emulator contexts: {context: result}."""
    out = {}
    for context in ("fp_optimized", "quantized"):
        with contextlib.ExitStack() as stack:
            stack.enter_context(dfclog.watch(logdir, found))
            fns = {}
            for role, info in group.items():
                runner = sdk.load_har(dirs[role] / f"{info.name}_quantized.har", cfg["hw_arch"])
                returned = post.map_outputs(sdk.hn_dict(runner), list(dict.fromkeys(info.end_nodes.values())))
                emu = stack.enter_context(sdk.emulator(runner, context, cfg["calibration"]["batch_size"]))
                fns[role] = post.wrap_nhwc(emu, returned, info, feed[role])
            t0 = time.time()
            out[context] = evaluate.evaluate(fns, test, proto)
            log.info("emulator %s: %s (%.1f s)", context, evaluate.headline(out[context]), time.time() - t0)
    return out


def build_multi(group: dict, dirs: dict, out_dir: Path, chain: str, cfg: dict, calib: dict, logdir: Path,
                found: list, log) -> dict:
    """Hailo's route for several networks on one device: the chain's *parsed* HARs joined into one
    model, optimized once with the joined script (each model's commands in its scope) on a
    calibration dict keyed by each network's input layer, compiled to one HEF (``<chain>_multi.hef``).
    A DFC error is returned (and reported in the manifest); the single-model HEFs stand."""
    t0 = time.time()
    n = min(len(a) for a in calib.values())
    try:
        with dfclog.watch(logdir, found):
            runners = [sdk.load_har(dirs[r] / f"{group[r].name}.har", cfg["hw_arch"]) for r in group]
            joined = sdk.join(runners)
            script = (out_dir / f"{chain}_multi.alls").read_text()
            sdk.optimize(joined, script, {alls.input_layer(group[r]): calib[r][:n] for r in group})
            sdk.save_har(joined, out_dir / f"{chain}_multi_quantized.har")
            t1 = time.time()
            (out_dir / f"{chain}_multi.hef").write_bytes(sdk.compile_hef(joined))
    except Exception as e:  # noqa: BLE001 - any DFC error: reported, the single-model HEFs stand
        log.warning("%s: multi-network HEF not built: %s: %s", chain, type(e).__name__, e)
        return {"error": f"join -> optimize -> compile failed: {type(e).__name__}: {e}",
                "networks": [i.name for i in group.values()], "route": "join parsed HARs, optimize, compile"}
    log.info("%s: multi-network HEF (%s): optimized and compiled in %.1f s", chain,
             ", ".join(i.name for i in group.values()), time.time() - t0)
    return {"hef": f"{chain}_multi.hef", "networks": [i.name for i in group.values()],
            "route": "join parsed HARs, optimize, compile", "alls": f"{chain}_multi.alls",
            "hef_bytes": (out_dir / f"{chain}_multi.hef").stat().st_size, "optimize_s": round(t1 - t0, 1),
            "compile_s": round(time.time() - t1, 1)}

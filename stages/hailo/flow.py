"""The Dataflow Compiler flow for one chain (runs only where the SDK is installed).

Per model: translate (parse, cut at the end nodes) -> ``<name>.har``; model script + calibration ->
optimize -> ``<name>_quantized.har``; compile -> ``<name>.hef``; emulator accuracy in the
FP-optimized and quantized contexts.  Per chain: the three quantized HARs joined into one
multi-network HAR/HEF (``<chain>_multi.hef``).  Every DFC downgrade line is collected (dfclog);
the caller runs all of it inside ``dfclog.cwd(logdir)``, where the DFC keeps its log file.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

from stages.hailo import dfclog, evaluate, post, sdk


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


def build_multi(group: dict, dirs: dict, out_dir: Path, chain: str, hw_arch: str, logdir: Path, found: list,
                log, performance_script: str = "") -> dict:
    """Join the chain's quantized HARs into one multi-network HAR and compile it to one HEF.

    Hailo's documented route joins *parsed* HARs and optimizes once; joining quantized HARs
    keeps each model's own calibration and script.  Where this DFC refuses that, the error is
    returned (and reported in the manifest) instead of failing the per-model results."""
    t0 = time.time()
    try:
        with dfclog.watch(logdir, found):
            runners = [sdk.load_har(dirs[r] / f"{group[r].name}_quantized.har", hw_arch) for r in group]
            joined = sdk.join(runners)
            if performance_script:        # join() does not carry the per-model performance_param over
                sdk.load_script(joined, performance_script)
            sdk.save_har(joined, out_dir / f"{chain}_multi_quantized.har")
            t0 = time.time()
            (out_dir / f"{chain}_multi.hef").write_bytes(sdk.compile_hef(joined))
    except Exception as e:  # noqa: BLE001 - any DFC error: reported, the single-model HEFs stand
        log.warning("%s: multi-network HEF not built: %s: %s", chain, type(e).__name__, e)
        return {"error": f"join/compile of quantized HARs failed: {type(e).__name__}: {e}",
                "networks": [i.name for i in group.values()]}
    log.info("%s: multi-network HEF (%s) compiled in %.1f s", chain, ", ".join(i.name for i in group.values()),
             time.time() - t0)
    return {"hef": f"{chain}_multi.hef", "networks": [i.name for i in group.values()],
            "hef_bytes": (out_dir / f"{chain}_multi.hef").stat().st_size, "compile_s": round(time.time() - t0, 1)}

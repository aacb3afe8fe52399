"""The README's findings on a run, written from its manifests and report (no number typed by hand).

``markdown(run_dir)`` reads ``train``'s, ``quantize``'s and the report's ``results.json`` and
states what the run shows, each line with the split and where the number comes from.  A
finding whose inputs are missing is left out (the generated text says which were).
"""
from __future__ import annotations

import json
from pathlib import Path

from shared.manifest import read_manifest


def _load(p: Path) -> dict:
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _ratio(a, b) -> str:
    return f"{a / b:.2f}×" if a and b else "–"


def chain_vs_detector(train: dict) -> list[str]:
    det = (train.get("metrics") or {}).get("detection") or {}
    p, alone, clean = det.get("pipeline"), det.get("detector_alone"), det.get("detector_on_clean")
    if not (p and alone):
        return []
    line = (f"**The chain earns its place** (train stage, test split): on the degraded `{p.get('variant', '1_noisy')}` "
            f"images the FP32 pipeline reaches AP@0.5 {p['ap']:.3f} (landmark NME {p['nme']:.3f}) where YuNet alone "
            f"gets {alone['ap']:.3f} (NME {alone['nme']:.3f})")
    if clean:
        line += f"; on clean images YuNet alone gets {clean['ap']:.3f} (NME {clean['nme']:.3f})"
    return [line + "."]


def jmmc(results: dict) -> list[str]:
    j = results.get("jmmc") or {}
    rows = {r["key"]: r for r in j.get("rows") or []}
    fp, jm = rows.get("fp32"), rows.get("jmmc")
    if not (fp and jm):
        return [f"The JMMC table was not made: {j.get('message')}."] if j.get("message") else []
    out = [f"**The JMMC chain** (pruned + {jm['precision']}, test split, choices on val): AP@0.5 {jm['ap']:.3f} "
           f"[{jm['ap_lo']:.3f}, {jm['ap_hi']:.3f}], NME {jm['nme']:.3f}, {_ratio(jm.get('macs'), fp.get('macs'))} "
           f"the FP32 chain's MACs and {_ratio(jm.get('weight_bytes'), fp.get('weight_bytes'))} its weight bytes, "
           f"against FP32 AP {fp['ap']:.3f} [{fp['ap_lo']:.3f}, {fp['ap_hi']:.3f}] (NME {fp['nme']:.3f}): "
           f"{100 * (jm['ap'] - fp['ap']):+.1f} AP points."]
    ind = rows.get("independent")
    if ind:
        out.append(f"**Its independent twin** (the same ratio, each model pruned and QAT'd alone, chained): AP "
                   f"{ind['ap']:.3f} [{ind['ap_lo']:.3f}, {ind['ap_hi']:.3f}], NME {ind['nme']:.3f}, "
                   f"{_ratio(ind.get('macs'), fp.get('macs'))} the FP32 MACs.")
    for d in j.get("diffs") or []:
        verdict = ("the interval excludes 0" if d["lo"] > 0 or d["hi"] < 0 else "the interval includes 0: no "
                   "difference shown at this test size")
        out.append(f"{d['label']}: AP {d['value']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] (paired bootstrap over "
                   f"{d.get('n_images', j.get('n_images'))} test images; {verdict}).")
    for key, what in (("jmmc_fp32", "JMMC"), ("independent_fp32", "twin")):
        src = rows.get(key)
        if src and rows.get("jmmc" if key == "jmmc_fp32" else "independent"):
            q = rows["jmmc" if key == "jmmc_fp32" else "independent"]
            out.append(f"The {what}'s pruned FP32 source scores AP {src['ap']:.3f}; quantizing it (PTQ then QAT) "
                       f"moved that by {100 * (q['ap'] - src['ap']):+.1f} points.")
    return out


def speed(results: dict, quantize: dict) -> list[str]:
    out = []
    rows = {r["key"]: r for r in (results.get("jmmc") or {}).get("rows") or []}
    fp, src, jm = rows.get("fp32"), rows.get("jmmc_fp32"), rows.get("jmmc")
    if fp and src and fp.get("lat_1_ms") and src.get("lat_1_ms"):
        out.append(f"**Pruning shows in the latency** (ONNX Runtime, this CPU): the JMMC chain's pruned FP32 "
                   f"source has {_ratio(src.get('macs'), fp.get('macs'))} the MACs and runs at "
                   f"{_ratio(src['lat_1_ms'], fp['lat_1_ms'])} the FP32 latency with 1 thread, "
                   f"{_ratio(src.get('lat_all_ms'), fp.get('lat_all_ms'))} with all threads.")
    out += _where_time_stays(results)
    if src and jm and src.get("lat_1_ms") and jm.get("lat_1_ms"):
        out.append(f"INT8 vs FP32 of the same pruned chain, ONNX Runtime with its fused int8 kernels: "
                   f"{_ratio(jm['lat_1_ms'], src['lat_1_ms'])} the latency with 1 thread, "
                   f"{_ratio(jm.get('lat_all_ms'), src.get('lat_all_ms'))} with all.")
    arts = {r["artifact"]: r for r in results.get("rows") or []}
    files = {k: (r.get("files") or [None])[0] for k, r in rows.items()}
    a, b = arts.get(files.get("jmmc_fp32")), arts.get(files.get("jmmc"))
    if a and b and a.get("ov_1_ms") and b.get("ov_1_ms"):
        out.append(f"The same pair in OpenVINO: INT8 at {_ratio(b['ov_1_ms'], a['ov_1_ms'])} the FP32 latency with "
                   f"1 thread, {_ratio(b.get('ov_all_ms'), a.get('ov_all_ms'))} with all; OpenVINO vs ONNX Runtime "
                   f"FP32 latency {_ratio(a['ov_1_ms'], a.get('lat_1_ms'))} (1 thread).")
    ov = [abs(r["ov_ap"] - r["ap"]) for r in arts.values() if r.get("ov_ap") is not None and r.get("ap") is not None]
    if ov:
        out.append(f"OpenVINO and ONNX Runtime agree on accuracy: the largest AP difference over the "
                   f"{len(ov)} whole-system files is {max(ov):.3f}.")
    qm = quantize.get("metrics") or {}
    if qm.get("max_sim_onnx_gap") is not None:
        out.append(f"**INT8 files are measured with the fused kernels their latency is timed with**, after their "
                   f"biases are re-quantized to `x_scale * w_scale` (shared/qdq_bias.py), and each simulation with "
                   f"those int32 biases (stages/quantize/file_bias.py): the largest gap between a "
                   f"file and its AIMET simulation over the quantize grid is {qm['max_sim_onnx_gap']:.3f} (AP or dB).")
    gs = qm.get("sim_onnx_ap_gap") or {}
    if gs.get("files"):
        resolved = gs["resolved"]
        out.append(f"Per INT8 detection file, AP(file) - AP(simulation) on the {gs['n_images']} test images with its "
                   f"paired 95 % interval: {gs['over_tol']} of {gs['files']} files differ by more than "
                   f"{100 * gs['tol']:.1f} point (largest {100 * gs['max_abs']:.1f}); the intervals' median "
                   f"half-width is {100 * gs['median_half_width']:.1f} points; "
                   + (f"{len(resolved)} exclude 0 ({', '.join(f'`{x}`' for x in resolved)})." if resolved
                      else "every interval contains 0.")
                   + "".join(f" {m}: {b['over_tol']} of {b['files']} over {100 * gs['tol']:.1f} point "
                             f"(largest {100 * b['max_abs']:.1f})." for m, b in sorted((gs.get("by_model") or {}).items())))
    if gs.get("beyond"):
        b = gs["beyond"]
        out.append(f"How far the test split resolves those {len(b)} files (stages/quantize/measure.ap_resolution: AP "
                   f"again with one grey level moved on 0.4 % of the input, invisible to the FP32 chain): "
                   + "; ".join(f"`{x['file']}` {100 * x['gap']:+.1f} against a spread of {100 * x['spread']:.1f} "
                               f"(sd {100 * x['sd']:.1f}" + _unfused(x) + ")" for x in b)
                   + f" points. {sum(x['within_spread'] for x in b)} of {len(b)} gaps are within their file's spread.")
        unf = [x for x in b if x.get("unfused_gap") is not None]
        if unf:
            far = sum(abs(x["unfused_gap"]) > gs["tol"] for x in unf)
            out.append(f"The same files in ONNX Runtime's unfused session (Q/DQ kept, float convs and adds: the file's "
                       f"int8 semantics by construction): {far} of {len(unf)} are also more than "
                       f"{100 * gs['tol']:.1f} point from their simulation (each file's unfused gap is in the line "
                       f"above; these files were picked for a large fused gap; every file both ways: "
                       f"tools/sim_gap_modes.py, docs/decisions.md, session 13).")
    out += _kernel_sim(gs)
    for cand, b in (qm.get("benchmark") or {}).items():
        fused = b.get("int8_fused_kernels_eval") or {}
        cpu = b.get("cpu") or {}
        if fused.get("fast") and b.get("int8_accuracy_mode"):
            out.append(f"The best INT8 pipeline of `{cand}` was measured in the `{b['int8_accuracy_mode']}` session; "
                       f"a default ONNX Runtime session (no `session.x64quantprecision`) scores AP "
                       f"{fused['fast']['ap']:.3f} on this CPU (VNNI: {'yes' if cpu.get('vnni') else 'no'}).")
    return out


def _kernel_sim(gs: dict) -> list[str]:
    """The files against their simulation (AIMET's or NNCF's) computing with ONNX Runtime's int8 kernels
    (stages/quantize/ort_kernels.py)."""
    k = gs.get("ort_kernels") or {}
    if not k.get("files"):
        return []
    per = k["per_file"]
    same = sum(abs(x["gap"]) < 1e-6 for x in per)
    rest = [x for x in per if not x["exact"]]
    left = sorted({op for x in rest for op in x["float_ops"]})
    others = gs.get("files", k["files"]) - k["files"]
    return [f"**The simulation computing with ONNX Runtime's kernels** (stages/quantize/ort_kernels.py: AIMET's sim "
            f"through `set_kernel`, NNCF's model through its function hooks, with the arithmetic of ONNX Runtime's x86 "
            f"kernels: QLinearConv and QLinearAdd requantisation, the order of its float ConvTranspose, Conv and "
            f"BatchNormalization, its logistic, QuantizeLinear's rounding; every parameter read from the file), against "
            f"the {k['files']} INT8 detection files measured with the fused kernels"
            + (f" (the other {others} are measured unfused, against their float simulation above)" if others > 0 else "")
            + f": it emulates every op of {k['exact_files']} of them; {same} give the "
            f"file's AP to 1e-4 point and the largest gap is {100 * k['max_abs']:.2f} point"
            + (f"; float ops left in {len(rest)} ({', '.join(left)}): " + ", ".join(_file_gap(x) for x in rest)
               if rest else "") + "."]


def _file_gap(x: dict) -> str:
    return f"`{x['file']}` {100 * x['gap']:+.1f}"


def _unfused(x: dict) -> str:
    """``; unfused +1.0`` where a file beyond 0.5 point was also measured unfused."""
    return "" if x.get("unfused_gap") is None else f"; unfused {100 * x['unfused_gap']:+.1f}"


def _where_time_stays(results: dict) -> list[str]:
    """The profile by resolution of the FP32 pipeline and the JMMC chain's pruned FP32 source: what the
    full-resolution layers keep of the time and of the MACs (why latency falls less than MACs)."""
    prof = {p.get("system"): p for p in ((results.get("profile") or {}).get("files") or {}).values()}
    fp, src = prof.get("fp32"), prof.get("jmmc_fp32")
    if not (fp and src and fp.get("by_scale_ms") and src.get("by_scale_ms")):
        return []

    def full(p):
        macs = p.get("macs_by_scale") or {}
        return p["by_scale_ms"].get("1/1", 0.0), p["total_ms"], macs.get("1/1", 0) / max(1, sum(macs.values()))
    (a, ta, ma), (b, tb, mb) = full(fp), full(src)
    return [f"Where the pruned chain's time stays (ONNX Runtime profile, 1 thread): the full-resolution layers "
            f"take {a:.1f} of the FP32 pipeline's {ta:.1f} ms ({100 * ma:.0f} % of its MACs) and {b:.1f} of the pruned "
            f"one's {tb:.1f} ms ({100 * mb:.0f} % of its MACs); what channel pruning leaves there (the first and last "
            f"layers are not pruned, `round_to` keeps at least one multiple) runs far below the CPU's roof, bound by "
            f"memory traffic rather than arithmetic (README, Where the time goes)."]


def depth(run_dir: Path, results: dict) -> list[str]:
    """Which residual blocks depth pruning removed from the JMMC chain's pruned FP32 source (its bundle)."""
    rows = {r["key"]: r for r in (results.get("jmmc") or {}).get("rows") or []}
    f = ((rows.get("jmmc_fp32") or {}).get("files") or [None])[0]
    rec = _load(Path(run_dir) / Path(f).parent / "bundle.json") if f else {}
    parts = {p: v.get("dropped") for p, v in (rec.get("parts") or {}).items() if v.get("dropped")}
    if not parts:
        return []
    names = "; ".join(f"the {p}'s {', '.join(f'`{b}`' for b in bs)}" for p, bs in parts.items())
    return [f"**Depth pruning** (`prune.depth`, before channel pruning, the same blocks in the joint chain and its "
            f"twin): removed {names} - whole residual blocks, chosen on training images by how little they change "
            f"their input per share of the activation traffic (stages/prune/depth.py); channel pruning alone narrows "
            f"layers but keeps every one of them."]


def markdown(run_dir: Path) -> str:
    run_dir = Path(run_dir)
    train = read_manifest(run_dir, "train") or {}
    quantize = read_manifest(run_dir, "quantize") or {}
    results = _load(run_dir / "report" / "results.json")
    lines = chain_vs_detector(train) + jmmc(results) + depth(run_dir, results) + speed(results, quantize)
    missing = [n for n, m in (("train", train), ("quantize", quantize), ("report", results)) if not m]
    head = f"<!-- generated by host/findings.py from volumes/{run_dir.name}/ (train, quantize manifests; report/results.json) -->"
    body = [f"- {ln}" for ln in lines] or ["- (no finished stages to read)"]
    if missing:
        body.append(f"- Not read (not run yet): {', '.join(missing)}.")
    return "\n".join([head, *body, ""])

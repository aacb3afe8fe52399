"""Split discipline and intervals: choices on val (never test), bootstrap intervals in metrics.json.

A tiny end-to-end run of the stage (32 px images, 8 per split, tiny nets, two PTQ cells for the enhancer (AdaRound off/on), one elsewhere,
one-epoch QAT / joint QAT) checks that rows say which split each figure is from, that the
PTQ cell QAT starts from is the best on val, that the intervals exist and bracket their value,
and that every ONNX file written has its artifact record (shared/artifacts.py).
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from shared.evaluation import accuracy_mode
from shared.manifest import MissingInput
from shared.selection import SelectionError
from stages.quantize import methods, steps
from stages.quantize.tests.conftest import TINY

VARIANTS = ("0", "1", "2", "0_noisy", "1_noisy")
SIZE = 32


def _split(root, name, n, seed):
    d = root / name
    (d / "images").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        clean = np.full((SIZE, SIZE, 3), 40, np.uint8)
        x1, y1 = int(rng.integers(0, 8)), int(rng.integers(0, 8))
        x2, y2 = x1 + 20, y1 + 22
        cv2.ellipse(clean, ((x1 + x2) // 2, (y1 + y2) // 2), (10, 11), 0, 0, 360, (150, 170, 210), -1)
        imgs = {"0": clean, "1": clean // 4, "2": clean // 8}
        noise = rng.normal(0, 8, clean.shape)
        imgs["0_noisy"] = np.clip(clean + noise, 0, 255).astype(np.uint8)
        imgs["1_noisy"] = np.clip(clean // 4 + noise, 0, 255).astype(np.uint8)
        paths = {}
        for v in VARIANTS:
            paths[v] = f"images/{i:03d}_{v}.png"
            cv2.imwrite(str(d / paths[v]), imgs[v])
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        kps = [[cx - 4, cy - 3], [cx + 4, cy - 3], [cx, cy], [cx - 3, cy + 5], [cx + 3, cy + 5]]
        records.append({"images": paths, "faces": [{"box": [x1, y1, x2, y2], "landmarks": kps}]})
    (d / "index.json").write_text(json.dumps(records))


def _dataset(root, val=True):
    for k, name in enumerate(("train", "test", "calibration") + (("val",) if val else ())):
        _split(root, name, 8, k)
    return root


# a "pruned" chain: narrower than the TINY base it records (the bundle loader conforms the layers)
NARROW = {"input_size": 32, "enhancer": {"channels": [4, 6, 6, 6], "enc_blocks": [1, 1, 1, 1], "kernel": 3},
          "denoiser": {"channels": [4, 6, 8, 6], "enc_blocks": [1, 1, 1, 1], "kernel": 3},
          "detector": {"stage_channels": [[3, 4, 4], [4, 6], [6, 6], [6, 6], [6, 6], [6, 6]], "feat_channels": 6}}
MADE_BY = {"stage": "prune", "method": "joint", "ratio": 0.25}


def _candidate(root, pipe, arch=TINY, made_by=None):
    """An upstream output as a model bundle (base: TINY), plus the older models.json format."""
    from shared.models.bundle import save_bundle
    save_bundle(root, pipe, TINY, made_by or {"stage": "train", "method": "fp32"})
    (root / "models.json").write_text(json.dumps(arch))
    return root


CONFIG = """run: t
eval: {batch: 4}
quantize:
  models: [enhancer, denoiser, detector, pipeline]
  ptq: {techniques: [none], adaround: [false, true], adaround_models: [enhancer], adaround_iterations: 2,
        seeds: [0], bitwidths: [W8A8], quant_scheme: min_max}
  qat: {epochs: 1, batch_size: 4, limit: 4}
  inq: {enabled: false}
  nncf: {models: [pipeline], subset_size: 4}
  joint: {epochs: 1, batch_size: 4, limit: 4}
  bench: {runs: 1, ort_calibration_images: 2}
  intervals: {n_boot: 200, resolution_draws: 2}
"""


@pytest.fixture()
def one_thread():
    """Tiny convolutions run several times faster on one thread than on contended cores."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _ctx(tmp_path, data, stage, root, extra=""):
    """The context shared.stage.main hands the stage (artifact records included), on the tiny config."""
    from shared.config import load_config
    from shared.stage import StageContext
    (tmp_path / "c.yaml").write_text(CONFIG + extra)
    config = load_config(tmp_path / "c.yaml")
    out = tmp_path / "out"
    out.mkdir()
    inputs = {"dataset": data, stage: root}
    return StageContext("quantize", config["quantize"], config, tmp_path, out, 0, logging.getLogger("test.quantize"),
                        inputs, {s: {} for s in inputs})


def _entry(method, val_ap, test_ap):
    return {"row": {"candidate": "c", "model": "pipeline", "method": method, "seed": 0, "split": "test",
                    "sim": {"ap": test_ap}, "sim_val": {"ap": val_ap}}}


def test_selection_refuses_test_and_uses_val():
    entries = [_entry("ptq:none", 0.6, 0.9), _entry("ptq:cle", 0.7, 0.5)]
    assert methods.choose("pipeline", entries)["row"]["method"] == "ptq:cle"     # best on val, not on test
    with pytest.raises(SelectionError, match="test split is only ever reported"):
        methods.choose("pipeline", entries, "test")
    with pytest.raises(SelectionError, match="not measured on the 'val' split"):
        methods.choose("pipeline", [*entries, {"row": {**entries[0]["row"], "sim_val": None}}])
    rec = methods.selection_record("pipeline", entries[1], entries)
    assert rec["selected_on"] == "val" and rec["val_ap"] == 0.7 and rec["test_ap"] == 0.5


def test_dither_moves_a_fraction_by_one_grey_level():
    from stages.quantize import measure
    rng = np.random.default_rng(0)
    x = np.full((4, 3, 64, 64), 0.5, np.float32)
    d = measure.dither(x, 0.01, 1 / 255, rng) - x
    moved = d != 0
    assert 0.007 < moved.mean() < 0.013 and np.allclose(np.abs(d[moved]), 1 / 255)
    assert measure.dither(np.zeros_like(x), 1.0, 1 / 255, rng).min() == 0     # kept inside the input range


def test_ap_resolution_of_a_system_blind_to_its_input(tmp_path, tiny_pipe):
    """AP again under one-grey-level moves: the inputs do move, and a system that ignores them has no spread."""
    import torch
    from shared.data import load_split
    from shared.evaluation import Protocol
    from stages.quantize import measure
    split = load_split(_dataset(tmp_path / "d"), "test")
    proto = Protocol(variant="1_noisy", batch=4)     # two batches of the 8 images
    seen = []

    def blind(x):
        seen.append(x.copy())
        with torch.no_grad():
            return [o.numpy() for o in tiny_pipe.detector(torch.zeros_like(torch.from_numpy(x)))]
    plain = measure.evaluate(blind, "detector", split, proto)["ap"]
    n = len(seen)                                                  # batches of one pass
    res = measure.ap_resolution(blind, "detector", split, proto, draws=3)
    assert len(res["aps"]) == 3 and res["aps"] == [plain] * 3 and res["sd"] == 0 and res["spread"] == 0
    assert len(seen) == 4 * n
    for k in range(n):           # each draw moved some values of each batch by the detector's grey level (1 in 0..255)
        d = np.concatenate([(seen[n * j + k] - seen[k]).ravel() for j in (1, 2, 3)])
        assert np.any(d != 0) and set(np.unique(d)) <= {-1.0, 0.0, 1.0}


def test_resolve_gaps_measures_only_the_far_files_and_their_unfused_session(tmp_path, tiny_pipe):
    """A file over 0.5 point from its sim gets its AP resolution and its unfused session's AP (the
    yardstick the fused kernels are held to); a file within 0.5 point is left as it was."""
    import torch
    from shared.data import load_split
    from shared.evaluation import Protocol, ort_session
    from stages.quantize import measure, onnx_io
    split = load_split(_dataset(tmp_path / "d"), "test")
    proto = Protocol(variant="1_noisy", batch=4)
    f = onnx_io.export_fp32(tiny_pipe.detector.eval(), "detector", torch.zeros(1, 3, 32, 32), tmp_path / "det.onnx", 13)
    gap = {"lo": -0.02, "hi": 0.04, "n_images": 8}
    far = {"candidate": "c", "model": "detector", "method": "ptq:none", "bits": "W8A8", "onnx_file": f.name,
           "sim": {"ap": 0.3}, "gap_ap": {**gap, "value": 0.01}}
    near = {**far, "method": "ptq:x", "gap_ap": {**gap, "value": 0.004}}
    measure.resolve_gaps([far, near], tmp_path, split, proto, draws=2)
    ref = measure.evaluate(ort_session(f, "reference"), "detector", split, proto)["ap"]
    assert far["ap_unfused"] == {"ap": ref, "gap": ref - 0.3} and len(far["ap_resolution"]["aps"]) == 2
    assert "ap_unfused" not in near and "ap_resolution" not in near
    (b,) = measure.gap_summary([far, near])["beyond"]
    assert b["file"] == f.name and b["unfused_gap"] == ref - 0.3 and b["gap"] == 0.01


def test_folder_names_are_filesystem_safe():
    assert methods.folder_name("train-fp32") == "train-fp32"
    a, b = methods.folder_name("prune-joint/ratio 0.5"), methods.folder_name("prune-joint ratio/0.5")
    assert "/" not in a and " " not in a and a != b
    assert methods.folder_name("..") not in (".", "..", "")


def test_dataset_without_val_fails_with_one_line(tmp_path, tiny_pipe):
    data = _dataset(tmp_path / "dataset", val=False)
    ctx = _ctx(tmp_path, data, "train", _candidate(tmp_path / "train", tiny_pipe))
    with pytest.raises(MissingInput) as e:
        steps.run(ctx)
    msg = str(e.value)
    assert "\n" not in msg and f"{data / 'val'}/ missing" in msg and "no val split" in msg


def test_tiny_run_selects_on_val_and_reports_intervals(tmp_path, one_thread):
    """A pruned candidate (narrower than its base config) through the whole stage."""
    import torch
    from shared.models import build_models
    torch.manual_seed(0)
    pruned = build_models(NARROW).eval()
    _candidate(tmp_path / "prune" / "joint_r25", pruned, NARROW, MADE_BY)
    ctx = _ctx(tmp_path, _dataset(tmp_path / "dataset"), "prune", tmp_path / "prune",
               "  candidates: [{stage: prune, kind: joint_r25}]\n")
    steps.run(ctx)
    m = json.loads((ctx.out / "metrics.json").read_text())
    rows = m["rows"]
    assert all(r["split"] == "test" for r in rows)
    ptq = [r for r in rows if r["method"].startswith("ptq:")]
    assert [r["model"] for r in ptq] == ["enhancer", "enhancer", "denoiser", "detector", "pipeline"]
    assert all(r["sim_val"] and ("ap" in r["sim_val"] or "psnr" in r["sim_val"]) for r in ptq)
    cand = "prune-joint_r25"
    sel = m["selection"][cand]
    assert set(sel) == {"enhancer", "denoiser", "detector", "pipeline"}
    for name, rec in sel.items():
        key = rec["metric"]
        cells = [r for r in rows if r["model"] == name and r["method"].startswith("ptq:")]
        best = max(r["sim_val"][key] for r in cells)
        assert rec["selected_on"] == "val" and rec["val_" + key] == best
        assert next(r for r in cells if r["cell"] == rec["chosen_cell"])["sim_val"][key] == best
    assert m["splits"] == {"reported": "test", "selected_on": "val", "n_images": {"test": 8, "val": 8}}
    assert m["joint_vs_independent"][cand]["ptq_best_cell"] == sel["pipeline"]["chosen_cell"]
    by = {r["method"]: r for r in rows if r["model"] == "pipeline"}
    j = m["joint_vs_independent"][cand]
    for key, src in (("ap_diff", "onnx"), ("ap_diff_sim", "sim")):
        d = j[key]
        assert d["lo"] <= d["value"] <= d["hi"] and d["n_images"] == 8 and d["n_boot"] == 200
        assert d["value"] == pytest.approx(by["joint_qat"][src]["ap"] - by["independent_qat_chained"][src]["ap"])
    v = m["int8_vs_fp32"][cand]
    assert v["selection"]["selected_on"] == "val" and v["split"] == "test"
    for key in ("ap_diff", "ap_diff_sim", "int8_ap", "fp32_ap"):
        assert v[key]["lo"] <= v[key]["value"] <= v[key]["hi"]
    assert v["fp32_ap"]["value"] == pytest.approx(by["fp32"]["onnx"]["ap"])
    assert v["ap_diff"]["value"] == pytest.approx(by[v["int8"]]["onnx"]["ap"] - by["fp32"]["onnx"]["ap"])
    c = m["candidates"][cand]
    assert c["made_by"] == MADE_BY and c["folder"] == cand and (ctx.out / cand / "pipeline" / "fp32.onnx").is_file()
    assert c["params"] == {p: sum(t.numel() for t in getattr(pruned, p).parameters()) for p in c["params"]}
    from stages.quantize import onnx_io       # FP32 bytes: the pruned candidate's own export
    assert by["ptq:none"]["fp32_bytes"] == onnx_io.weight_bytes(ctx.out / cand / "pipeline" / "fp32.onnx")["weight_bytes"]
    assert 0 < by["ptq:none"]["int8_bytes"] < by["ptq:none"]["fp32_bytes"]
    det = [r for r in rows if r["model"] in ("detector", "pipeline") and r["bits"] != "FP32"]
    for r in det:      # every INT8 detection file: its AP gap to the simulation, with a paired interval
        g = r["gap_ap"]
        assert g["lo"] <= g["value"] <= g["hi"] and g["n_images"] == 8
        assert g["value"] == pytest.approx(r["onnx"]["ap"] - r["sim"]["ap"])
    assert all(r["gap_ap"] is None for r in rows if r["model"] in ("enhancer", "denoiser") and "gap_ap" in r)
    gs = m["sim_onnx_ap_gap"]
    assert gs["files"] == len(det) and gs["max_abs"] == pytest.approx(max(abs(r["gap_ap"]["value"]) for r in det))
    assert sum(b["files"] for b in gs["by_model"].values()) == len(det)
    for r in det:     # a file further than 0.5 point from its sim is measured again under invisible input changes
        if abs(r["gap_ap"]["value"]) > gs["tol"] and (ctx.out / r["onnx_file"]).is_file():
            res = r["ap_resolution"]
            assert res["draws"] == 2 and len(res["aps"]) == 2 and res["spread"] == max(res["aps"]) - min(res["aps"])
            if accuracy_mode(ctx.out / r["onnx_file"]) == "exact":   # and in its unfused session, the yardstick
                u = r["ap_unfused"]
                assert 0 <= u["ap"] <= 1 and u["gap"] == pytest.approx(u["ap"] - r["sim"]["ap"])
    assert len(gs["beyond"]) == sum("ap_resolution" in r for r in det)
    assert all(b["unfused_gap"] == (next(r for r in det if r["onnx_file"] == b["file"]).get("ap_unfused") or {}).get("gap")
               for b in gs["beyond"])
    assert max(b["max_abs"] for b in gs["by_model"].values()) == pytest.approx(gs["max_abs"])
    ported = [r for r in det if "sim_ort" in r]     # files measured fused: against the sim on ORT's kernels
    nncf = [r for r in ported if r["method"].startswith("nncf")]
    assert len(nncf) == sum(r["method"].startswith("nncf") for r in det if r["bits"] != "FP32") > 0
    assert all(r["sim_ort"]["coverage"]["nncf_quantizers"] > 0 for r in nncf)
    for r in ported:
        t = r["sim_ort"]
        assert t["gap_ap"]["value"] == pytest.approx(r["onnx"]["ap"] - t["metrics"]["ap"])
        assert t["coverage"]["qlinear_conv"] > 0 and isinstance(t["coverage"]["exact"], bool)
        if t["coverage"]["exact"]:                  # every op the file runs in int8, emulated: the same AP
            assert abs(t["gap_ap"]["value"]) < 1e-9
    k = gs["ort_kernels"]
    assert k["files"] == len(ported) and k["exact_files"] == sum(r["sim_ort"]["coverage"]["exact"] for r in ported)
    header = (ctx.out / "results.csv").read_text().splitlines()[0].split(",")
    assert {"split", "sim_val_ap", "onnx_ap", "onnx_minus_sim_ap", "onnx_minus_sim_ap_lo"} <= set(header)
    _check_artifacts(ctx, rows, cand)


def _check_artifacts(ctx, rows: list[dict], cand: str) -> None:
    """One record per ONNX file written (not under hidden folders), valid by shared.artifacts, saying
    what the report used to guess: role = the row's unit, precision of the written graph, chain = the
    file's folder, metrics = the ONNX measurement of the (last) row naming the file."""
    from shared.artifacts import check_manifest, onnx_precision
    from shared.evaluation import is_qdq
    from shared.models import OUTPUT_NAMES
    check_manifest({"stage": "quantize", "artifacts": ctx.artifacts, "chains": ctx.chains}, ctx.out)
    recs = {r["file"]: r for r in ctx.artifacts}
    assert len(recs) == len(ctx.artifacts)
    written = [p.relative_to(ctx.out) for p in ctx.out.rglob("*.onnx")]
    assert any(p.parts[0].startswith(".") for p in written)          # .bench/: ONNX Runtime's INT8, no record
    assert sorted(recs) == sorted(p.as_posix() for p in written if not any(x.startswith(".") for x in p.parts))
    assert ctx.chains == {}        # no folder holds a measured enhancer -> denoiser -> detector chain
    by_file = {r["onnx_file"]: r for r in rows}
    for f, rec in recs.items():
        row, path = by_file[f], ctx.out / f
        assert rec["format"] == "onnx" and rec["chain"] == Path(f).parent.as_posix()
        assert rec["role"] == row["model"] == Path(f).parent.name
        assert rec["metrics"] == pytest.approx(row["onnx"], nan_ok=True)
        if row["bits"] == "FP32":
            assert not is_qdq(path) and rec["precision"] == onnx_precision(path) == "fp32"
        else:
            assert is_qdq(path) and rec["precision"] == onnx_precision(path)
            assert re.fullmatch(r"u?int\d+(\+u?int\d+)*", rec["precision"]), rec
    import onnx
    for model in ("enhancer", "denoiser", "detector", "pipeline"):
        rec = recs[f"{cand}/{model}/fp32.onnx"]
        assert (rec["role"], rec["precision"], rec["chain"]) == (model, "fp32", f"{cand}/{model}")
        outs = [o.name for o in onnx.load(str(ctx.out / rec["file"]), load_external_data=False).graph.output]
        assert (set(outs) == set(OUTPUT_NAMES)) if model in ("detector", "pipeline") else len(outs) == 1

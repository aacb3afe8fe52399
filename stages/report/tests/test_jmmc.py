"""The JMMC table (roles resolved from a fake quantize metrics.json, intervals), the missing-role
message, the real-photos section, seeds mean ± std, and the pipeline's restored-image tap."""
import json
import logging

import pytest

from shared.config import defaults, load_schema
from shared.data import load_split
from shared.evaluation import Protocol
from shared.dag import Stage
from shared.stage import StageContext
from stages.report import jmmc, photos_section, seeds, steps
from stages.report.records import discover
from stages.report.measure import evaluate_artifact, evaluate_chain, restored_tensor

from conftest import INDEP, JOINT, write_photos, write_prune_and_quantize

ORDER = ["dataset", "train", "prune", "quantize", "photos", "report"]


@pytest.fixture
def ctx(run_dir, eval_cfg, tmp_path, monkeypatch):
    write_prune_and_quantize(run_dir, eval_cfg)
    write_photos(run_dir)
    dag = {n: Stage(n, d, n) for n, d in (("dataset", ()), ("train", ("dataset",)), ("prune", ("train",)),
                                           ("quantize", ("train", "prune")), ("photos", ("train", "quantize")),
                                           ("report", tuple(ORDER[:-1])))}
    monkeypatch.setattr(steps, "load_dag", lambda: dag)
    config = defaults(load_schema())
    config.update(run="t", eval=eval_cfg)
    cfg = config["report"]
    cfg["latency"].update(warmup=1, runs=2, frames=2)
    cfg["strip"]["images"] = 1
    cfg["intervals"]["n_boot"] = 200
    out = tmp_path / "out"
    out.mkdir()
    deps = ORDER[:-1]
    return StageContext("report", cfg, config, run_dir, out, 0, logging.getLogger("test"),
                        {d: run_dir / d for d in deps},
                        {d: json.loads((run_dir / d / "manifest.json").read_text()) for d in deps})


def test_jmmc_table_from_fake_upstream(ctx):
    m = steps.run(ctx)["metrics"]
    out = ctx.out
    info = json.loads((out / "results.json").read_text())
    j = info["jmmc"]
    assert j["message"] is None and j["roles"] == {"jmmc": JOINT, "independent": INDEP}
    keys = [r["key"] for r in j["rows"]]
    assert keys == ["fp32", "jmmc", "independent", "jmmc_fp32", "independent_fp32"]
    by = {r["key"]: r for r in j["rows"]}
    assert by["fp32"]["files"] == ["train/pipeline.onnx"]
    assert by["jmmc"]["files"] == [f"quantize/{JOINT}/pipeline/joint_qat.onnx"]
    assert by["independent"]["files"] == [f"quantize/{INDEP}/{p}/qat.onnx" for p in ("enhancer", "denoiser", "detector")]
    assert by["jmmc_fp32"]["files"] == ["prune/variants/joint_l2_r50/pipeline.onnx"]     # the prune variant's own
    for r in j["rows"]:
        assert r["ap_lo"] <= r["ap"] <= r["ap_hi"] and r["n_images"] == 4
        assert r["psnr"] > 0 and r["macs"] > 0 and r["weight_bytes"] > 0 and r["lat_1_ms"] > 0
    # the chain of three is costed as the sum of its models' rows
    rows = {r["artifact"]: r for r in info["rows"]}
    assert by["independent"]["macs"] == sum(rows[f]["macs"] for f in by["independent"]["files"])
    # one detection pass: the results row of a kept artifact is the JMMC table's measurement
    assert rows["train/pipeline.onnx"]["ap"] == by["fp32"]["ap"] and rows["train/pipeline.onnx"]["psnr"] == by["fp32"]["psnr"]
    assert [d["label"] for d in j["diffs"]] == ["joint − independent", "JMMC − FP32"]
    for d in j["diffs"]:
        assert d["lo"] <= d["value"] <= d["hi"] and d["n_boot"] == 200 and d["n_images"] == 4
    assert abs(j["diffs"][1]["value"] - (by["jmmc"]["ap"] - by["fp32"]["ap"])) < 1e-9
    md = (out / "results.md").read_text()
    assert "joint − independent AP = " in md and "JMMC − FP32 AP = " in md and "validation split" in md
    assert "AP@0.5 [95 % CI]" in md and f"quantize/{JOINT}/pipeline/joint_qat.onnx" in md
    page = (out / "report.html").read_text()
    assert "JMMC chain (pruned jointly + joint QAT, INT8)" in page and "joint − independent AP = " in page
    snippet = (out / "README_snippet.md").read_text()
    assert "JMMC − FP32 AP = " in snippet and "independent twin" in snippet
    # upstream intervals drawn: joint vs independent (no table, the interval alone) and compressed vs FP32
    for f in ("joint_vs_independent.png", "compressed_vs_fp32.png", "photos.png"):
        assert (out / f).stat().st_size > 0, f
    labels = [d["label"] for d in info["intervals"]["joint"]]
    assert f"quantize {JOINT}: joint QAT − independent QAT chain" in labels and "JMMC table: joint − independent" in labels
    assert info["intervals"]["ap"][f"quantize/{JOINT}/pipeline/fp32.onnx"] == [0.21, 0.41]
    assert m["jmmc"]["diffs"] and m["jmmc"]["rows"]["jmmc"]["ap_lo"] <= m["jmmc"]["rows"]["jmmc"]["ap"]
    # the photos section, clearly outside the training domain
    assert "Real photos (outside the training domain)" in page and "OUTSIDE THE TRAINING DOMAIN" in page
    assert "### Real photos (outside the training domain)" in snippet and "(docs/figures/t_photos.png)" in snippet
    assert "| JMMC INT8 | int8 (QDQ) | 0.600 | 0.700 | 0.550 | 0.200 | – | 0.100 |" in snippet
    print("\n" + jmmc.markdown(j))


def test_missing_role_message(run_dir, eval_cfg):
    write_prune_and_quantize(run_dir, eval_cfg, roles=False)
    stages = discover(run_dir, ORDER, ORDER[:-1], {"report"}, eval_cfg)
    p = jmmc.plan(stages)
    assert p["message"] == jmmc.NO_JMMC and not p["systems"] and not jmmc.keep(p)
    test = load_split(run_dir / "dataset", "test")
    j = jmmc.build(p, [], {}, test, Protocol(**eval_cfg), 50, 0)
    assert j["rows"] == [] and j["diffs"] == []
    assert jmmc.markdown(j) == "_no JMMC candidate in quantize.candidates (set role: jmmc)_\n"
    assert "set role: jmmc" in jmmc.html(j)
    # the role may come from the quantize.candidates entries of the manifest's config instead
    q = run_dir / "quantize" / "manifest.json"
    man = json.loads(q.read_text())
    man["config"]["quantize"] = {"candidates": [{"stage": "prune", "kind": "joint_l2_r50", "role": "jmmc"}]}
    q.write_text(json.dumps(man))
    p = jmmc.plan(discover(run_dir, ORDER, ORDER[:-1], {"report"}, eval_cfg))
    assert p["message"] is None and [s["key"] for s in p["systems"]] == ["fp32", "jmmc", "jmmc_fp32"]
    assert jmmc.NO_INDEP in p["notes"]


def test_no_quantize_run(run_dir, eval_cfg):
    p = jmmc.plan(discover(run_dir, ORDER, ORDER[:-1], {"report"}, eval_cfg))
    assert p["message"].startswith("no quantize results") and not p["systems"]


def test_photos_section_present_skipped_absent(run_dir, eval_cfg, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    stages = discover(run_dir, ORDER, ORDER[:-1], {"report"}, eval_cfg)
    p = photos_section.collect(stages, out)
    assert "did not run" in p["skipped"]
    assert "Not in this run" in photos_section.markdown(p) and "Not in this run" in photos_section.html(p, str)
    write_photos(run_dir, skipped="needs facenet-pytorch")
    p = photos_section.collect(discover(run_dir, ORDER, ORDER[:-1], {"report"}, eval_cfg), out)
    assert p == {"skipped": "needs facenet-pytorch"} and not (out / "photos.png").exists()
    write_photos(run_dir)
    p = photos_section.collect(discover(run_dir, ORDER, ORDER[:-1], {"report"}, eval_cfg), out)
    assert p["conditions"] == ["clean", "degraded"] and p["n_ref_faces"] == {"clean": 5, "degraded": 5}
    assert p["figure"] == "photos.png" and (out / "photos.png").exists() and p["n_photos"] == 2
    md = photos_section.markdown(p, "docs/figures/x_photos.png")
    assert md.startswith("## Real photos (outside the training domain)") and "OUTSIDE THE TRAINING DOMAIN" in md
    assert "| FP32 | fp32 | 0.800 | 0.900 | 0.750 | 0.400 | 0.500 | 0.300 |" in md
    assert "![Real photos (outside the training domain)](docs/figures/x_photos.png)" in md
    assert "<img" in photos_section.html(p, lambda f: f"<img src='{f}'>")


def test_seeds_mean_std():
    rows = [{"artifact": f"quantize/c/pipeline/none_W8A8_s{s}.onnx", "ap": a, "nme": None, "psnr": None, "ssim": None}
            for s, a in ((0, 0.5), (1, 0.7))] + [{"artifact": "quantize/c/pipeline/qat_s0.onnx", "ap": 0.1}]
    gs = seeds.groups(rows)
    assert len(gs) == 1 and gs[0]["artifact"] == "quantize/c/pipeline/none_W8A8_s*.onnx" and gs[0]["seeds"] == [0, 1]
    assert abs(gs[0]["ap_mean"] - 0.6) < 1e-12 and abs(gs[0]["ap_std"] - 0.1) < 1e-12
    assert "0.600 ± 0.100" in seeds.markdown(gs) and "One seed" in seeds.markdown([])


def test_pipeline_tap_gives_the_chain_psnr(run_dir, eval_cfg):
    """The restored image tapped from the one-graph pipeline = the chain of three sessions (same weights here)."""
    import onnx
    stages = discover(run_dir, ORDER, ORDER[:-1], {"report"}, eval_cfg, reuse=False)
    arts = {a.rel: a for a in stages[1].artifacts}
    assert restored_tensor(onnx.load(str(arts["pipeline.onnx"].path))) == "den_out"
    assert restored_tensor(onnx.load(str(arts["yunet.onnx"].path))) is None
    test, proto = load_split(run_dir / "dataset", "test"), Protocol(**eval_cfg)
    m = evaluate_artifact(arts["pipeline.onnx"], test, proto, keep_dets=True)
    c = evaluate_chain({r: arts[f"{k}.onnx"] for r, k in (("enhancer", "enhancer"), ("denoiser", "denoiser"),
                                                           ("detector", "yunet"))}, test, proto, keep_dets=True)
    assert len(m["dets"]) == len(c["dets"]) == 4
    assert abs(m["psnr"] - c["psnr"]) < 1e-4 and abs(m["ap"] - c["ap"]) < 1e-6
    assert "dets" not in evaluate_artifact(arts["pipeline.onnx"], test, proto)

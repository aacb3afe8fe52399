"""The whole stage on a synthetic run: tiny ONNX files in train and in a compressed quantize
group, a PTQ table, a missing prune stage; the page and the tables list every artifact."""
import json
import logging

import pytest

from shared.config import defaults, load_schema
from shared.dag import Stage
from shared.stage import StageContext
from stages.report import steps
from stages.report.table import read_csv

from conftest import build_model, manifest, model_recs, rec


@pytest.fixture
def ctx(run_dir, eval_cfg, tmp_path, monkeypatch):
    q = run_dir / "quantize"
    for k in ("enhancer", "denoiser", "yunet"):
        build_model(k, q / "w8a8_joint" / f"{k}.onnx", seed=7)
    (q / "ptq_grid.csv").write_text("technique,adaround,seed,ap,psnr,seconds\n" + "".join(
        f"{t},{a},{s},{0.3 + 0.1 * (a == 'true') + 0.01 * s},{20 + s},{s * 1.5}\n"
        for t in ("none", "cle") for a in ("false", "true") for s in range(3)))
    (q / "joint.csv").write_text("bitwidth,mode,ap\nW8A8,independent,0.31\nW8A8,joint,0.35\n")
    (q / "manifest.json").write_text(json.dumps(manifest("quantize", eval_cfg, artifacts=model_recs(
        "w8a8_joint", ("enhancer", "denoiser", "yunet")))))
    h = run_dir / "hailo"
    (h / "chain" / "int8").mkdir(parents=True)
    (h / "yunet.hef").write_bytes(b"\0" * 1000)
    (h / "manifest.json").write_text(json.dumps(manifest(
        "hailo", eval_cfg, {"hef": {"skipped": "needs the DFC"}}, skipped="needs the Hailo Dataflow Compiler",
        artifacts=[rec("yunet.hef", "detector", "int8", {"ap": 0.123, "nme": 0.2}),
                   # a chain only its stage can run (like ESP-DL's): in the table, never in the image strip
                   rec("chain/int8", "chain", "int8", {"ap": 0.99, "nme": 0.1}, {"weight_bytes": 500, "bytes": 3000},
                       chain="chain")])))
    dag = {n: Stage(n, d, n) for n, d in (("dataset", ()), ("train", ("dataset",)), ("prune", ("train",)),
                                           ("quantize", ("train",)), ("report", ("train",)), ("hailo", ("train",)),
                                           ("summary", ("report",)))}
    monkeypatch.setattr(steps, "load_dag", lambda: dag)  # report not last; summary reads the report
    config = defaults(load_schema())
    config.update(run="t", eval=eval_cfg)
    cfg = config["report"]
    cfg["latency"].update(warmup=1, runs=3, frames=4)
    cfg["strip"]["images"] = 2
    out = tmp_path / "out"
    out.mkdir()
    return StageContext("report", cfg, config, run_dir, out, 0, logging.getLogger("test"),
                        {d: run_dir / d for d in ("dataset", "train", "quantize")},
                        {d: json.loads((run_dir / d / "manifest.json").read_text())
                         for d in ("dataset", "train", "quantize")})


def test_stage_end_to_end(ctx, capsys):
    m = steps.run(ctx)["metrics"]
    out = ctx.out
    rows = read_csv(out / "results.csv")
    names = [r["artifact"] for r in rows]
    expected = [f"train/{k}.onnx" for k in ("enhancer", "denoiser", "yunet", "pipeline")] + [
        f"quantize/w8a8_joint/{k}.onnx" for k in ("enhancer", "denoiser", "yunet")] + [
        "train chain", "quantize/w8a8_joint chain", "hailo/yunet.hef", "hailo/chain/int8"]
    assert sorted(names) == sorted(expected) and m["rows"] == len(expected)
    page = (out / "report.html").read_text()
    for n in expected:
        assert f">{n}" in page, n
    assert page.count("data:image/png;base64,") >= 5           # bytes, latency, ptq, joint, strip
    for f in ("ap_vs_bytes.png", "ap_vs_latency.png", "ptq_grid.png", "joint_vs_independent.png", "strip.png",
              "results.md", "results.json"):
        assert (out / f).stat().st_size > 0, f
    by = {r["artifact"]: r for r in rows}
    hef = by.pop("hailo/yunet.hef")
    assert float(hef["ap"]) == 0.123 and hef["bytes"] == "1000" and hef["lat_1_ms"] == "" and "hailo" in hef["source"]
    expected.remove("hailo/yunet.hef")
    ext = by.pop("hailo/chain/int8")
    assert ext["role"] == "chain" and ext["weight_bytes"] == "500" and ext["bytes"] == "3000"
    expected.remove("hailo/chain/int8")
    for n in expected:
        r = by[n]
        assert int(r["params"]) > 0 and 0 < int(r["weight_bytes"]) < int(r["bytes"])
        if r["role"] in ("detector", "pipeline", "chain"):
            assert 0.0 <= float(r["ap"]) <= 1.0 and int(r["missed"]) <= 4
        else:
            assert float(r["psnr"]) > 0 and -1 <= float(r["ssim"]) <= 1
    assert float(by["train/yunet.onnx"]["lat_1_ms"]) > 0 and float(by["train/yunet.onnx"]["lat_all_p90_ms"]) > 0
    assert float(by["train chain"]["fps_serial"]) > 0 and float(by["train chain"]["fps_parallel"]) > 0
    # the chain of three sessions and the one-graph pipeline are the same function here
    assert abs(float(by["train chain"]["ap"]) - float(by["train/pipeline.onnx"]["ap"])) < 1e-6
    skipped = {s["what"]: s["reason"] for s in m["skipped"]}
    assert "stage prune" in skipped and "did not run" in skipped["stage prune"]
    assert "stage summary" not in skipped and "stage report" not in skipped
    assert skipped["stage hailo"] == "needs the Hailo Dataflow Compiler" and skipped["hailo: hef"] == "needs the DFC"
    assert "skipped" in page.lower() and "stage prune" in page
    assert "report:" in capsys.readouterr().out


def test_readme_snippet(ctx, tmp_path):
    from stages.report.readme_figures import main, snippet
    steps.run(ctx)
    text = snippet(ctx.out, "t")
    assert (ctx.out / "README_snippet.md").read_text() == text      # the stage writes it too
    for n in ("train chain", "quantize/w8a8_joint chain"):          # whole systems only
        assert n in text
    assert "train/yunet.onnx" not in text
    assert "(docs/figures/t_ap_vs_bytes.png)" in text and "stage prune" in text
    work = tmp_path / "work"
    (work / "t").mkdir(parents=True)
    ctx.out.rename(work / "t" / "report")
    assert main(["--run", "t", "--work", str(work)]) == 0
    assert (work / "t" / "report" / "README_snippet.md").read_text() == text
    assert main(["--run", "nope", "--work", str(work)]) == 3


def test_stage_with_nothing_to_measure(ctx):
    """train skipped and without ONNX files: the report still comes out, listing why."""
    for p in (ctx.run_dir / "train").glob("*.onnx"):
        p.unlink()
    for d in ("quantize", "hailo"):
        for p in sorted((ctx.run_dir / d).rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        (ctx.run_dir / d).rmdir()
    (ctx.run_dir / "train" / "manifest.json").write_text(json.dumps(manifest("train", skipped="needs a GPU")))
    m = steps.run(ctx)["metrics"]
    assert m["rows"] == 0 and m["best_ap"] is None
    what = {s["what"] for s in m["skipped"]}
    assert {"stage train", "stage quantize", "plot strip.png", "plot ap_vs_bytes.png"} <= what
    assert "needs a GPU" in (ctx.out / "report.html").read_text()
    assert "needs a GPU" in (ctx.out / "results.md").read_text()

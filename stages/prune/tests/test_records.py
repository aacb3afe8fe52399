"""What the prune stage hands the report: a record per exported file with its metrics, and the variant's chain."""
import logging

from shared import artifacts
from shared.stage import StageContext
from stages.prune.measure import record


def metrics(per_model: bool) -> dict:
    det = {"ap": 0.37, "nme": 0.5, "top_box_iou": 0.6, "missed": 4}
    ev = {"detection": det, "restoration_chain": {"psnr": 26.9, "ssim": 0.7, "psnr_input": 13.0, "ssim_input": 0.4,
                                                  "src": "1_noisy"}}
    onnx = {"pipeline": {"file": "pipeline.onnx", "bytes": 10}}
    if per_model:
        ev.update(enhancer={"psnr": 30.0}, denoiser={"psnr": 33.0}, yunet={"ap": 0.8})
        onnx.update({k: {"file": f"{k}.onnx", "bytes": 5} for k in ("enhancer", "denoiser", "yunet")})
    return {"eval": ev, "onnx": onnx}


def ctx_with_files(tmp_path, m):
    (tmp_path / "variants" / "j50").mkdir(parents=True)
    for o in m["onnx"].values():
        (tmp_path / "variants" / "j50" / o["file"]).write_bytes(b"x")
    return StageContext("prune", {}, {}, tmp_path, tmp_path, 0, logging.getLogger("test"))


def test_every_file_and_the_chain(tmp_path):
    ctx = ctx_with_files(tmp_path, metrics(True))
    record(ctx, "variants/j50", metrics(True))
    by = {r["file"]: r for r in ctx.artifacts}
    assert {f: r["metrics"] for f, r in by.items()} == {
        "variants/j50/pipeline.onnx": metrics(True)["eval"]["detection"],
        "variants/j50/enhancer.onnx": {"psnr": 30.0}, "variants/j50/denoiser.onnx": {"psnr": 33.0},
        "variants/j50/yunet.onnx": {"ap": 0.8}}
    assert by["variants/j50/yunet.onnx"]["role"] == "detector" and by["variants/j50/pipeline.onnx"]["role"] == "pipeline"
    assert {r["chain"] for r in ctx.artifacts} == {"variants/j50"} and {r["precision"] for r in ctx.artifacts} == {"fp32"}
    assert ctx.chains["variants/j50"]["ap"] == 0.37 and ctx.chains["variants/j50"]["psnr"] == 26.9
    assert "src" not in ctx.chains["variants/j50"]
    artifacts.check_manifest({"stage": "prune", "artifacts": ctx.artifacts, "chains": ctx.chains}, tmp_path)


def test_pipeline_only_export_has_no_chain(tmp_path):
    ctx = ctx_with_files(tmp_path, metrics(False))
    record(ctx, "variants/j50", metrics(False))
    assert [r["file"] for r in ctx.artifacts] == ["variants/j50/pipeline.onnx"] and ctx.chains == {}

"""What the prune stage hands the report: each exported file with its metrics, and the variant's chain."""
from stages.prune.measure import report_entries


def metrics(per_model: bool) -> dict:
    det = {"ap": 0.37, "nme": 0.5, "top_box_iou": 0.6, "missed": 4}
    ev = {"detection": det, "restoration_chain": {"psnr": 26.9, "ssim": 0.7, "psnr_input": 13.0, "ssim_input": 0.4,
                                                  "src": "1_noisy"}}
    onnx = {"pipeline": {"file": "pipeline.onnx"}}
    if per_model:
        ev.update(enhancer={"psnr": 30.0}, denoiser={"psnr": 33.0}, yunet={"ap": 0.8})
        onnx.update({k: {"file": f"{k}.onnx"} for k in ("enhancer", "denoiser", "yunet")})
    return {"eval": ev, "onnx": onnx}


def test_every_file_and_the_chain():
    files, chain = report_entries("variants/j50", metrics(True))
    by = {f["file"]: f["eval"] for f in files}
    assert by == {"variants/j50/pipeline.onnx": metrics(True)["eval"]["detection"],
                  "variants/j50/enhancer.onnx": {"psnr": 30.0}, "variants/j50/denoiser.onnx": {"psnr": 33.0},
                  "variants/j50/yunet.onnx": {"ap": 0.8}}
    assert chain["chain"] == "variants/j50"
    assert chain["eval"]["ap"] == 0.37 and chain["eval"]["psnr"] == 26.9 and "src" not in chain["eval"]


def test_pipeline_only_export_has_no_chain():
    files, chain = report_entries("variants/j50", metrics(False))
    assert [f["file"] for f in files] == ["variants/j50/pipeline.onnx"] and chain is None

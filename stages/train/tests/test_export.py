"""ONNX exports of the chain: files, parity with torch, and cv2.FaceDetectorYN loading YuNet."""
import cv2
import numpy as np
import onnx

from shared.data import Split
from shared.models import OUTPUT_NAMES, build_models
from stages.train.export import export_all, opencv_check


def test_export_all_parity_and_opencv(tmp_path):
    pipe = build_models({"input_size": [64, 64]}).eval()
    probe = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    rep = export_all(pipe, tmp_path, (64, 64), 13, probe)
    assert set(rep) == {"enhancer", "denoiser", "yunet", "pipeline"}
    for name, r in rep.items():
        assert (tmp_path / r["file"]).stat().st_size == r["bytes"] > 10_000
        assert r["max_abs_diff_vs_torch"] < 1e-3, (name, r)
    g = onnx.load(tmp_path / "yunet.onnx").graph
    assert [o.name for o in g.output] == list(OUTPUT_NAMES)
    assert [d.dim_value for d in g.input[0].type.tensor_type.shape.dim] == [1, 3, 64, 64]

    img_dir = tmp_path / "images"
    img_dir.mkdir()
    img = np.full((64, 64, 3), 128, np.uint8)
    cv2.imwrite(str(img_dir / "a_0.png"), img)
    split = Split(tmp_path, [{"images": {"0": "images/a_0.png"}, "faces": []}])
    res = opencv_check(tmp_path / "yunet.onnx", split, "0", 4, 0.9, 0.45)
    assert res["images"] == 1 and res["faces_found"] >= 0 and res["opencv"] == cv2.__version__


def test_every_export_gets_a_record(tmp_path):
    """train.steps.record_artifacts: one record per exported file, yunet as the detector, with its metrics."""
    import logging

    from shared.artifacts import check_manifest
    from shared.stage import StageContext
    from stages.train.steps import record_artifacts
    pipe = build_models({"input_size": [64, 64]}).eval()
    rep = export_all(pipe, tmp_path, (64, 64), 13, np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32))
    ctx = StageContext("train", {}, {}, tmp_path, tmp_path, 0, logging.getLogger("test"))
    metrics = {"enhancer": {"psnr": 20.0}, "denoiser": {"psnr": 21.0}, "yunet": {"ap": 0.5}, "pipeline": {"ap": 0.6}}
    record_artifacts(ctx, rep, metrics)
    by = {r["file"]: r for r in ctx.artifacts}
    assert {f: r["role"] for f, r in by.items()} == {"enhancer.onnx": "enhancer", "denoiser.onnx": "denoiser",
                                                      "yunet.onnx": "detector", "pipeline.onnx": "pipeline"}
    assert by["yunet.onnx"]["metrics"] == {"ap": 0.5} and {r["chain"] for r in ctx.artifacts} == {"."}
    check_manifest({"stage": "train", "artifacts": ctx.artifacts}, tmp_path)

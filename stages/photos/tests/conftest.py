"""Photos stage fixtures: a fake run (train / prune / quantize outputs with tiny ONNX pipelines built with
onnx.helper) and a StageContext on it.

The "pipeline" is YuNet-shaped, not trained: [0, 1] input, x255, strided convs emitting the 12 outputs
(cls/obj sigmoid, bbox, kps at strides 8/16/32), so the shared decode and the scoring run on it for real.
The quantized one puts a QuantizeLinear/DequantizeLinear pair on its input (a QDQ graph).
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SIZE = 64


def build_pipeline(path: Path, size: int = SIZE, qdq: bool = False, seed: int = 0) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from shared.models import OUTPUT_NAMES, STRIDES
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [numpy_helper.from_array(np.float32(255.0), "pix"),
                          numpy_helper.from_array(np.array([1, 1, 4, 10], np.int64), "split")], "input"
    if qdq:
        inits += [numpy_helper.from_array(np.float32(1 / 255), "qs"), numpy_helper.from_array(np.uint8(0), "qz")]
        nodes += [helper.make_node("QuantizeLinear", [x, "qs", "qz"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "qs", "qz"], ["xd"])]
        x = "xd"
    nodes.append(helper.make_node("Mul", [x, "pix"], ["det_in"]))
    for s in STRIDES:
        w = rng.normal(0, 1e-5, (16, 3, s, s)).astype(np.float32)
        b = np.zeros(16, np.float32)
        b[0], b[1] = 1.0, -1.0
        inits += [numpy_helper.from_array(w, f"w{s}"), numpy_helper.from_array(b, f"b{s}"),
                  numpy_helper.from_array(np.array([1, -1, 16], np.int64), f"shape{s}")]
        nodes += [helper.make_node("Conv", ["det_in", f"w{s}", f"b{s}"], [f"c{s}"], strides=[s, s]),
                  helper.make_node("Transpose", [f"c{s}"], [f"t{s}"], perm=[0, 2, 3, 1]),
                  helper.make_node("Reshape", [f"t{s}", f"shape{s}"], [f"r{s}"]),
                  helper.make_node("Split", [f"r{s}", "split"], [f"cl{s}", f"ob{s}", f"bbox_{s}", f"kps_{s}"], axis=2),
                  helper.make_node("Sigmoid", [f"cl{s}"], [f"cls_{s}"]),
                  helper.make_node("Sigmoid", [f"ob{s}"], [f"obj_{s}"])]
    ch = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, None, ch[n.split("_")[0]]]) for n in OUTPUT_NAMES]
    graph = helper.make_graph(nodes, "pipeline", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                [1, 3, size, size])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def manifest(stage: str, metrics: dict | None = None, skipped=None, artifacts=()) -> dict:
    return {"stage": stage, "config": {"seed": 0, stage: {}}, "metrics": metrics or {}, "skipped": skipped,
            "artifacts": list(artifacts)}


def rec(file: str, role: str = "pipeline", precision: str = "fp32") -> dict:
    """An artifact record as shared/artifacts.py writes it."""
    return {"file": file, "role": role, "precision": precision, "format": "onnx",
            "chain": str(Path(file).parent), "label": None, "metrics": None, "cost": None}


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """<run>/train/pipeline.onnx; prune with one variant (pipeline + a per-model file); quantize with a
    picked and an unpicked W8A8 pipeline and the FP32 reference export."""
    run = tmp_path / "run"
    build_pipeline(run / "train" / "pipeline.onnx")
    (run / "train" / "manifest.json").write_text(json.dumps(manifest("train", artifacts=[rec("pipeline.onnx")])))
    p = run / "prune"
    build_pipeline(p / "variants" / "joint_l2_r50" / "pipeline.onnx", seed=1)
    build_pipeline(p / "variants" / "joint_l2_r50" / "yunet.onnx", seed=1)
    (p / "manifest.json").write_text(json.dumps(manifest("prune", artifacts=[
        rec("variants/joint_l2_r50/pipeline.onnx"), rec("variants/joint_l2_r50/yunet.onnx", "detector")])))
    q = run / "quantize"
    build_pipeline(q / "train-fp32" / "pipeline" / "fp32.onnx")
    for s in (0, 1):
        build_pipeline(q / "train-fp32" / "pipeline" / f"none_W8A8_s{s}.onnx", qdq=True, seed=s)
    export = {"onnx": "none_W8A8_s0.onnx", "weight_bytes": 100}
    rows = [{"candidate": "train-fp32", "model": "pipeline", "method": "fp32", "bits": "FP32",
             "onnx_file": "train-fp32/pipeline/fp32.onnx", "onnx": {"ap": 0.5}},
            {"candidate": "train-fp32", "model": "pipeline", "method": "none", "bits": "W8A8", "seed": 0,
             "onnx_file": "train-fp32/pipeline/none_W8A8_s0.onnx", "export": export, "onnx": {"ap": 0.4}},
            {"candidate": "train-fp32", "model": "pipeline", "method": "none", "bits": "W8A8", "seed": 1,
             "onnx_file": "train-fp32/pipeline/none_W8A8_s1.onnx", "export": {**export, "onnx": "none_W8A8_s1.onnx"},
             "onnx": {"ap": 0.45}}]
    (q / "metrics.json").write_text(json.dumps({"rows": rows}))
    (q / "manifest.json").write_text(json.dumps(manifest("quantize", {"int8_vs_fp32": {"train-fp32": {
        "int8_file": "train-fp32/pipeline/none_W8A8_s0.onnx", "int8": "none"}}}, artifacts=[
        rec("train-fp32/pipeline/fp32.onnx")] + [rec(f"train-fp32/pipeline/none_W8A8_s{s}.onnx", precision="int8")
                                                   for s in (0, 1)])))
    return run


@pytest.fixture
def ctx(run_dir, tmp_path):
    from shared.config import defaults, load_schema
    from shared.stage import StageContext
    config = defaults(load_schema())
    config["run"] = "t"
    cfg = config["photos"]
    cfg.update(images=["astronaut", "lfw_mosaic", "chelsea"], lfw_faces=4)
    out = tmp_path / "out"
    out.mkdir()
    deps = ("train", "prune", "quantize")
    return StageContext("photos", cfg, config, run_dir, out, 0, logging.getLogger("test.photos"),
                        {d: run_dir / d for d in deps},
                        {d: json.loads((run_dir / d / "manifest.json").read_text()) for d in deps})

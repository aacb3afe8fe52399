"""The ONNX Runtime profile is grouped by model and carries each model's MACs; the roof is measured."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from stages.report import profile  # noqa: E402


def _chain(path):
    """/enhancer/... conv (3->8) then /detector/... conv (8->4) on 16x16, named like a torch export."""
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(8, 3, 3, 3)).astype(np.float32), rng.normal(size=(4, 8, 1, 1)).astype(np.float32)
    a, b = "/enhancer/conv/Conv_output_0", "/enhancer/act/Relu_output_0"   # fused layout nodes take these names
    nodes = [helper.make_node("Conv", ["x", "w1"], [a], pads=[1, 1, 1, 1], name="/enhancer/conv/Conv"),
             helper.make_node("Relu", [a], [b], name="/enhancer/act/Relu"),
             helper.make_node("Conv", [b, "w2"], ["y"], name="/detector/head/Conv")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])],
                          [onnx.numpy_helper.from_array(w1, "w1"), onnx.numpy_helper.from_array(w2, "w2")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def test_profile_groups_node_time_and_macs_by_model(tmp_path):
    p = profile.profile(_chain(tmp_path / "c.onnx"), runs=3)
    assert set(p["by_model_ms"]) <= {"enhancer", "detector", "other"} and "enhancer" in p["by_model_ms"]
    assert p["total_ms"] == pytest.approx(sum(p["by_model_ms"].values())) and p["total_ms"] > 0
    assert p["macs_by_model"] == {"enhancer": 16 * 16 * 8 * 3 * 9, "detector": 16 * 16 * 4 * 8}
    md = profile.markdown({"c.onnx": p}, peak=100.0)
    assert "| c.onnx | enhancer |" in md and "of roof" in md


def test_summarise_divides_by_runs_and_ignores_session_events():
    ev = [{"cat": "Node", "name": "/denoiser/c/Conv_kernel_time", "dur": 4000, "args": {"op_name": "Conv"}},
          {"cat": "Node", "name": "QuantizeLinear_3_kernel_time", "dur": 1000, "args": {"op_name": "QuantizeLinear"}},
          {"cat": "Node", "name": "/denoiser/c/Conv_fence_before", "dur": 9999},
          {"cat": "Session", "name": "model_run", "dur": 99999}]
    s = profile.summarise(ev, n_runs=2)
    assert s["by_model_ms"] == {"denoiser": 2.0, "other": 0.5} and s["by_op_ms"]["Conv"] == 2.0


def test_peak_is_measured():
    assert profile.peak_gmacs(1, n=128, runs=2) > 0.1

"""The ONNX Runtime profile is grouped by model and carries each model's MACs; the roof is measured."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from stages.report import profile  # noqa: E402


def _save(path, nodes, inits, x_shape, y_shape):
    """An opset-13 graph x -> nodes -> y with the initializers ``inits`` ({name: array}), saved at ``path``."""
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                          [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def _chain(path):
    """/enhancer/... conv (3->8) then /detector/... conv (8->4) on 16x16, named like a torch export."""
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(8, 3, 3, 3)).astype(np.float32), rng.normal(size=(4, 8, 1, 1)).astype(np.float32)
    a, b = "/enhancer/conv/Conv_output_0", "/enhancer/act/Relu_output_0"   # fused layout nodes take these names
    nodes = [helper.make_node("Conv", ["x", "w1"], [a], pads=[1, 1, 1, 1], name="/enhancer/conv/Conv"),
             helper.make_node("Relu", [a], [b], name="/enhancer/act/Relu"),
             helper.make_node("Conv", [b, "w2"], ["y"], name="/detector/head/Conv")]
    return _save(path, nodes, {"w1": w1, "w2": w2}, [1, 3, 16, 16], [1, 4, 16, 16])


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


def test_layer_kinds_from_the_recorded_weight_shapes():
    conv = lambda op, x, w: {"op_name": op, "input_type_shape": [{"float": x}, {"float": w}]}   # noqa: E731
    q = {"op_name": "QLinearConv", "input_type_shape": [{"uint8": [1, 8, 64, 64]}, {"float": []}, {"uint8": []},
                                                        {"int8": [8, 1, 5, 5]}]}
    assert profile.kind_of(q) == "depthwise 5x5"
    assert profile.kind_of(conv("Conv", [1, 8, 64, 64], [16, 8, 1, 1])) == "pointwise 1x1"
    assert profile.kind_of(conv("FusedConv", [1, 3, 64, 64], [8, 3, 3, 3])) == "dense 3x3"
    assert profile.kind_of(conv("ConvTranspose", [1, 8, 8, 8], [8, 8, 2, 2])) == "transposed conv"
    assert profile.kind_of({"op_name": "Add"}) == "non-conv"
    ev = [{"cat": "Node", "name": "/enhancer/a_kernel_time", "dur": 3000, "args": q},
          {"cat": "Node", "name": "/enhancer/b_kernel_time", "dur": 1000, "args": {"op_name": "Add"}}]
    s = profile.summarise(ev, 1)
    assert s["by_kind_ms"] == {"depthwise 5x5": 3.0, "non-conv": 1.0}
    md = profile.markdown({"a.onnx": {**s, "macs_by_model": {}}, "b.onnx": {**s, "macs_by_model": {}}}, None)
    assert "| depthwise 5x5 | 3.00 | 3.00 |" in md


def test_a_real_profile_has_layer_kinds(tmp_path):
    p = profile.profile(_chain(tmp_path / "c.onnx"), runs=2)
    assert any(k.startswith(("dense", "pointwise")) for k in p["by_kind_ms"]), p["by_kind_ms"]
    assert p["macs_by_kind"] == {"dense 3x3": 16 * 16 * 8 * 3 * 9, "pointwise 1x1": 16 * 16 * 4 * 8}
    assert "| dense 3x3 | " in profile.markdown({"c.onnx": p}, None) and "GMAC/s" in profile.markdown({"c.onnx": p}, None)


def test_peak_is_measured():
    assert profile.peak_gmacs(1, n=128, runs=2) > 0.1


def _qdq_depthwise(path, c=8, hw=32):
    """x -> Q/DQ -> depthwise 3x3 conv (int8 weight through DQ, named like a torch export) -> Q/DQ."""
    arr = onnx.numpy_helper.from_array
    w = np.random.default_rng(0).integers(-60, 60, size=(c, 1, 3, 3)).astype(np.int8)
    init = [arr(w, "w_q"), arr(np.full(c, 0.01, np.float32), "w_s"), arr(np.zeros(c, np.int8), "w_z"),
            arr(np.float32(1 / 255), "x_s"), arr(np.uint8(0), "x_z"), arr(np.float32(0.02), "y_s"), arr(np.uint8(0), "y_z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["xq"], name="/enhancer/q"),
             helper.make_node("DequantizeLinear", ["xq", "x_s", "x_z"], ["xd"], name="/enhancer/dq"),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["wd"], axis=0, name="/enhancer/dw/wdq"),
             helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1] * 4, group=c, name="/enhancer/dw/Conv"),
             helper.make_node("QuantizeLinear", ["c", "y_s", "y_z"], ["cq"], name="/enhancer/q2"),
             helper.make_node("DequantizeLinear", ["cq", "y_s", "y_z"], ["y"], name="/enhancer/dq2")]
    g = helper.make_graph(nodes, "dw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, hw, hw])], init)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def test_a_fused_int8_conv_keeps_its_layer_kind(tmp_path):
    path = _qdq_depthwise(tmp_path / "dw.onnx")
    from stages.report.onnx_cost import tensor_shapes
    model = onnx.load(str(path))
    assert profile.graph_kinds(model, tensor_shapes(model)) == {"/enhancer/dw/Conv": "depthwise 3x3"}
    p = profile.profile(path, runs=2)
    assert "QLinearConv" in p["by_op_ms"], p["by_op_ms"]          # fused: the weight is not in the trace
    assert "depthwise 3x3" in p["by_kind_ms"] and "conv (shape unknown)" not in p["by_kind_ms"], p["by_kind_ms"]


def _two_scales(path):
    """/enhancer/ conv 3->8 at full resolution, then a stride-2 conv 8->16 (1/2): time and MACs by resolution."""
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(8, 3, 3, 3)).astype(np.float32), rng.normal(size=(16, 8, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1] * 4, name="/enhancer/full/Conv"),
             helper.make_node("Conv", ["a", "w2"], ["y"], pads=[1] * 4, strides=[2, 2], name="/enhancer/down/Conv")]
    return _save(path, nodes, {"w1": w1, "w2": w2}, [1, 3, 32, 32], [1, 16, 16, 16])


def test_time_and_macs_by_resolution(tmp_path):
    assert profile.scale_of([1, 8, 40, 40], 160) == "1/4" and profile.scale_of([1, 8], 160) == "other"
    p = profile.profile(_two_scales(tmp_path / "s.onnx"), runs=2)
    assert p["macs_by_scale"] == {"1/1": 32 * 32 * 8 * 3 * 9, "1/2": 16 * 16 * 16 * 8 * 9}
    assert {"1/1", "1/2"} <= set(p["by_scale_ms"]) and p["total_ms"] == pytest.approx(sum(p["by_scale_ms"].values()))
    md = profile.markdown({"s.onnx": p}, None)
    assert "| resolution |" in md and "| 1/2 | " in md and "% of MACs]" in md

"""OpenVINO, the second host runtime: it loads the exported ONNX files and agrees with ONNX Runtime."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("openvino")
from onnx import TensorProto, helper  # noqa: E402

from shared.evaluation import as_fn  # noqa: E402
from stages.report import openvino_rt  # noqa: E402


def _two_output_conv(path):
    """x -> Conv -> (y, relu(y)): two outputs, like a pipeline's several maps, static shape."""
    w = np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["y"], ["r"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8]),
                           helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 4, 8, 8])],
                          [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.flatten().tolist())])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def test_openvino_runs_an_exported_file_like_onnx_runtime(tmp_path):
    p = _two_output_conv(tmp_path / "m.onnx")
    assert openvino_rt.available() is None
    x = np.random.default_rng(1).random((3, 3, 8, 8), dtype=np.float32)      # a batch: run one image at a time
    ov = openvino_rt.as_system(openvino_rt.compiled(p, threads=1))(x)
    ref = as_fn(p)(x)
    assert [o.shape for o in ov] == [(3, 4, 8, 8)] * 2
    for a, b in zip(ov, ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    from stages.report.latency import timed
    t = timed(openvino_rt.request_call(p, 0), warmup=1, runs=3)
    assert t["runs"] == 3 and 0 < t["median_ms"] <= t["p90_ms"] * 1.0001

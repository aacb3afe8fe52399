"""QDQ graphs are measured at their written int8 semantics with the fused kernels (exact mode); FP32 graphs alike."""
import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402  (the FP32 graph below)

from shared.evaluation import as_fn, is_qdq, ort_session  # noqa: E402
from shared.ort_runtime import cpu_int8_features, describe  # noqa: E402
from shared.tests.qdq_graphs import qdq_conv  # noqa: E402


def _qdq_conv(path):
    """A minimal int8 QDQ conv: 1x1, weights 100 x 0.01."""
    return qdq_conv(path, np.full((4, 3, 1, 1), 100, np.int8))


def test_qdq_graphs_keep_their_int8_semantics(tmp_path):
    p = _qdq_conv(tmp_path / "q.onnx")
    assert is_qdq(p)
    exact = ort_session(p)
    assert exact.get_session_options().graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert describe(exact) == {"ort_graph_optimization": "ORT_ENABLE_ALL", "ort_x64quantprecision": True}
    assert describe(ort_session(p, mode="reference"))["ort_graph_optimization"] == "ORT_ENABLE_BASIC"
    x = np.full((1, 3, 4, 4), 200.0, np.float32)       # 3 x 200 x 1.0 = 600 -> clipped at 255 x 0.05 = 12.75
    y = as_fn(p)(x)[0]
    np.testing.assert_allclose(y, 12.75)
    np.testing.assert_allclose(as_fn(exact)(x)[0].shape, y.shape)   # a session is accepted as is


def _wide_qdq_conv(path, c=32):
    """A 3x3 QDQ conv whose u8 x s8 pair sums overflow int16 (255 x 127 x 2 > 32767): where the fused
    u8s8 kernels would saturate (AVX2 without VNNI), the exact mode must still match the unfused graph."""
    w = np.random.default_rng(0).integers(-127, 128, size=(c, c, 3, 3)).astype(np.int8)
    w[:, :, 0, :2] = 127                                 # adjacent large products of one sign
    return qdq_conv(path, w, x_s=0.01, y_s=1.0, y_z=128, pad=1, hw=16)


def test_exact_mode_matches_the_unfused_graph(tmp_path):
    p = _wide_qdq_conv(tmp_path / "wide.onnx")
    x = np.random.default_rng(1).uniform(0, 2.55, (1, 32, 16, 16)).astype(np.float32)
    ref = as_fn(ort_session(p, mode="reference"))(x)[0]
    exact = as_fn(ort_session(p, mode="exact"))(x)[0]
    np.testing.assert_array_equal(exact, ref)
    assert np.abs(ref).max() > 10                        # the case is not trivially zero


def test_unknown_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="session mode 'turbo'"):
        ort_session(_qdq_conv(tmp_path / "q.onnx"), mode="turbo")


def test_cpu_features_are_read(tmp_path):
    (tmp_path / "cpuinfo").write_text("processor : 0\nflags : fpu avx2 avx512_vnni\n")
    assert cpu_int8_features(tmp_path / "cpuinfo") == {"known": True, "avx2": True, "avx512f": False, "vnni": True}
    assert cpu_int8_features(tmp_path / "missing") == {"known": False}


def test_fp32_graphs_get_every_optimisation(tmp_path):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "f",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    p = tmp_path / "f.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(p))
    assert not is_qdq(p)
    assert ort_session(p).get_session_options().graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    np.testing.assert_allclose(as_fn(p)(np.array([[-1.0, 2.0]], np.float32))[0], [[0.0, 2.0]])

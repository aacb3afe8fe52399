"""A QDQ Conv whose int32 bias is off x_scale * w_scale: ONNX Runtime 1.23's fused kernels compute another
function; shared.qdq_bias rewrites the bias so the fused and the unfused graph agree again."""
import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from shared import qdq_bias  # noqa: E402
from shared.evaluation import accuracy_mode, as_fn, ort_session  # noqa: E402
from shared.tests.qdq_graphs import qdq_conv  # noqa: E402


def graph(path, b_s=None):
    rng = np.random.default_rng(0)
    w = rng.integers(-60, 61, size=(8, 8, 3, 3)).astype(np.int8)
    bias = rng.uniform(-1.0, 1.0, 8)
    return qdq_conv(path, w, w_s=0.01, x_s=0.02, y_s=0.05, y_z=128, pad=1, hw=8, bias=bias, b_s=b_s)


def outputs(path):
    x = np.random.default_rng(1).uniform(0, 2.0, (1, 8, 8, 8)).astype(np.float32)
    return (as_fn(ort_session(path, mode="exact"))(x)[0], as_fn(ort_session(path, mode="reference"))(x)[0])


def test_off_scale_bias_breaks_the_fused_kernels_and_the_rewrite_mends_them(tmp_path):
    p = graph(tmp_path / "off.onnx", b_s=0.003)          # not 0.02 x 0.01
    fused, unfused = outputs(p)
    assert np.abs(fused - unfused).max() > 0.5             # the fused answer is another function
    assert qdq_bias.mismatched(p) == 1 and accuracy_mode(p) == "reference"
    stats = qdq_bias.canonicalize_file(p)
    assert stats["biases"] == 1 and stats["rescaled"] == 1 and stats["max_bias_change"] <= 0.02 * 0.01 / 2 + 1e-9
    fused2, unfused2 = outputs(p)
    np.testing.assert_allclose(unfused2, unfused, atol=0.05 + 1e-6)   # at most one output step moved
    np.testing.assert_allclose(fused2, unfused2, atol=0.05 + 1e-6)
    assert qdq_bias.mismatched(p) == 0 and accuracy_mode(p) == "exact"
    assert qdq_bias.canonicalize_file(p)["rescaled"] == 0                       # idempotent
    assert not [n for n in onnx.load(str(p)).graph.node if n.output == ["bd"]]  # the old bias DQ is gone


def test_a_canonical_bias_is_left_alone(tmp_path):
    p = graph(tmp_path / "ok.onnx")
    before = p.read_bytes()
    assert qdq_bias.canonicalize_file(p) == {"biases": 1, "rescaled": 0, "max_bias_change": 0.0}
    assert p.read_bytes() == before and accuracy_mode(p) == "exact"
    fused, unfused = outputs(p)
    np.testing.assert_allclose(fused, unfused, atol=0.05 + 1e-6)

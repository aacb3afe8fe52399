"""The AIMET simulation with ONNX Runtime's kernels computes what the fused INT8 file computes, bit for bit
(stages/quantize/ort_kernels.py, issue 15: INT8 files at full optimisation against their simulation)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from shared.models import OUTPUT_NAMES
from shared.ort_runtime import open_session
from stages.quantize import aimet_ptq, onnx_io
from stages.quantize.grid import Cell
from stages.quantize.ort_kernels import target_kernels


def _sim_and_file(tiny_pipe, tmp_path, technique):
    torch.manual_seed(0)
    calib = [torch.rand(4, 3, 32, 32)]
    sim, _ = aimet_ptq.ptq(tiny_pipe, Cell(technique, False, "W8A8", 0, "min_max"), calib, tmp_path / "w", 10)
    info = onnx_io.export_qdq(sim, "pipeline", calib[0][:1], tmp_path / technique.replace("+", "_"), 13)
    return sim, tmp_path / info["onnx"]


def _outputs(model, x) -> dict:
    with torch.no_grad():
        return dict(zip(OUTPUT_NAMES, (y.numpy() for y in model(x))))


def _run(sim, path, x):
    """(the file's outputs in the ``exact`` session, the simulation's own) on ``x``."""
    sess = open_session(path, "exact", 1)
    ort = [dict(zip(OUTPUT_NAMES, sess.run(None, {"input": x[i:i + 1].numpy()}))) for i in range(len(x))]
    ort = {k: np.concatenate([o[k] for o in ort]) for k in OUTPUT_NAMES}
    return ort, _outputs(getattr(sim, "model", sim), x)


@pytest.mark.parametrize("technique", ["bn_fold+cle", "none"])
def test_the_sim_with_the_file_kernels_gives_the_files_outputs(tiny_pipe, tmp_path, technique):
    """Folded (every conv a QLinearConv) and not (a float Conv -> BatchNormalization pair per detector unit)."""
    sim, path = _sim_and_file(tiny_pipe, tmp_path, technique)
    x = torch.rand(6, 3, 32, 32)
    ort, plain = _run(sim, path, x)
    with target_kernels(sim.model, path) as cover:
        emulated = _outputs(sim.model, x)
    assert cover["exact"] and cover["float_ops"] == {} and cover["sigmoid"] == 6
    assert cover["qlinear_conv"] > 20 and cover["conv_transpose"] == 8 and cover["qlinear_add"] >= 8
    assert (cover["float_conv"] > 0 and cover["batch_norm"] > 0) == (technique == "none")
    for k in OUTPUT_NAMES:
        np.testing.assert_array_equal(emulated[k], ort[k], err_msg=k)         # bit for bit, scores too
    assert any(not np.array_equal(plain[k], ort[k]) for k in OUTPUT_NAMES)    # the float sim is not
    after = _outputs(sim.model, x)                                              # the kernels leave with the block
    assert all(np.array_equal(after[k], plain[k]) for k in OUTPUT_NAMES)


def test_a_conv_kept_in_float_before_a_relu_is_emulated_too(tiny_pipe, tmp_path):
    """A ReLU whose quantizer keeps negatives (a range QAT may learn) is not dropped by ONNX Runtime: the
    Conv before it stays float (no QLinearConv), and the kernels compute it in MLAS's order."""
    torch.manual_seed(0)
    calib = [torch.rand(4, 3, 32, 32)]
    sim, _ = aimet_ptq.ptq(tiny_pipe, Cell("bn_fold+cle", False, "W8A8", 0, "min_max"), calib, tmp_path / "w", 10)
    relu = sim.model.enhancer.stem[1].output_quantizers[0]
    relu.set_range(min=torch.tensor(-0.2), max=relu.get_max().detach())
    info = onnx_io.export_qdq(sim, "pipeline", calib[0][:1], tmp_path / "neg", 13)
    path = tmp_path / info["onnx"]
    x = torch.rand(4, 3, 32, 32)
    ort, _ = _run(sim, path, x)
    with target_kernels(sim.model, path) as cover:
        emulated = _outputs(sim.model, x)
    assert cover["float_conv"] == 1 and cover["exact"]
    for k in OUTPUT_NAMES:
        np.testing.assert_array_equal(emulated[k], ort[k], err_msg=k)


def test_mlas_logistic_is_onnx_runtimes_sigmoid(tmp_path):
    from onnx import TensorProto, helper
    from stages.quantize.ort_kernels import mlas_logistic
    g = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4096])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    (tmp_path / "s.onnx").write_bytes(m.SerializeToString())
    x = np.random.default_rng(0).normal(0, 6, 4096).astype(np.float32)
    x[:6] = [-30, 30, 0, -18, 18, 1e-8]
    y = open_session(tmp_path / "s.onnx", "exact", 1).run(None, {"x": x})[0]
    np.testing.assert_array_equal(mlas_logistic(torch.from_numpy(x)).numpy(), y)
    assert np.mean(torch.sigmoid(torch.from_numpy(x)).numpy() != y) > 0.1     # torch's is another function


def test_a_file_of_another_model_is_refused(tiny_pipe, tmp_path):
    sim, path = _sim_and_file(tiny_pipe, tmp_path, "bn_fold+cle")
    with pytest.raises(ValueError, match="no module of the simulation"):
        with target_kernels(sim.model.detector, path):
            pass


def test_the_nncf_model_with_the_file_kernels_gives_the_files_outputs(tiny_pipe, tmp_path):
    """NNCF's file keeps float weights behind a QuantizeLinear and float biases; ONNX Runtime quantizes both
    (constant folding, WeightBiasQuantization) and fuses. NNCF's quantizers set to the file's Q/DQ and the
    same kernels as hooks on its plain torch modules give the file's outputs bit for bit."""
    from stages.quantize import nncf_ptq
    torch.manual_seed(0)
    calib = [torch.rand(8, 3, 32, 32)]
    args = nncf_ptq.from_edgy("configs/edgy/quantization_int8.json", 8)
    qmodel = nncf_ptq.quantize(tiny_pipe, calib, args)
    path = nncf_ptq.export_onnx(qmodel, "pipeline", calib[0][:1], tmp_path / "nncf.onnx", 13)
    x = torch.rand(6, 3, 32, 32)
    ort, plain = _run(qmodel, path, x)
    with target_kernels(qmodel, path) as cover:
        emulated = _outputs(qmodel, x)
    assert cover["exact"] and cover["nncf_quantizers"] > 100 and cover["sigmoid"] == 6
    assert cover["qlinear_conv"] > 20 and cover["batch_norm"] > 0 and cover["qlinear_add"] >= 8
    for k in OUTPUT_NAMES:
        np.testing.assert_array_equal(emulated[k], ort[k], err_msg=k)
    assert any(not np.array_equal(plain[k], ort[k]) for k in OUTPUT_NAMES)
    after = _outputs(qmodel, x)
    assert all(np.array_equal(after[k], plain[k]) for k in OUTPUT_NAMES)


@pytest.mark.parametrize("p", [
    # the demo's joint-QAT enhancer, encoders.1.0: the fixed part's FMA decides one input pair
    {"sa": 0.0017865061527118087, "sb": 0.0022239102981984615, "sc": 0.001866091275587678, "za": 111, "zb": 106,
     "zc": 0},
    {"sa": 0.02, "sb": 0.013, "sc": 0.031, "za": 128, "zb": 3, "zc": 17},
])
def test_qlinear_add_is_onnx_runtimes_on_every_input_pair(tmp_path, p):
    """Every (a, b) of uint8 through a DQ -> Add -> Q graph ONNX Runtime fuses into QLinearAdd."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from stages.quantize.ort_kernels import qlinear_add
    f = np.float32
    p = {**{k: f(v) for k, v in p.items() if k.startswith("s")}, **{k: v for k, v in p.items() if k.startswith("z")},
         "dt": np.dtype(np.uint8)}
    inits = [numpy_helper.from_array(np.array(p[k], f if k.startswith("s") else np.uint8), k)
             for k in ("sa", "sb", "sc", "za", "zb", "zc")]
    nodes = [helper.make_node("DequantizeLinear", ["a", "sa", "za"], ["fa"]),
             helper.make_node("DequantizeLinear", ["b", "sb", "zb"], ["fb"]),
             helper.make_node("Add", ["fa", "fb"], ["s"]), helper.make_node("QuantizeLinear", ["s", "sc", "zc"], ["c"])]
    io = [helper.make_tensor_value_info(n, TensorProto.UINT8, [65536]) for n in ("a", "b", "c")]
    g = helper.make_graph(nodes, "g", io[:2], io[2:], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), tmp_path / "add.onnx")
    a, b = np.repeat(np.arange(256, dtype=np.uint8), 256), np.tile(np.arange(256, dtype=np.uint8), 256)
    c = open_session(tmp_path / "add.onnx", "exact", 1).run(None, {"a": a, "b": b})[0]
    da = torch.from_numpy((a.astype(f) - f(p["za"])) * p["sa"])
    db = torch.from_numpy((b.astype(f) - f(p["zb"])) * p["sb"])
    ours = qlinear_add(da, db, p).numpy() / p["sc"] + p["zc"]
    np.testing.assert_array_equal(np.rint(ours).astype(np.uint8), c)

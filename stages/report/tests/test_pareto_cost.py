"""Pareto front on a hand-made case; parameters and MACs read from tiny ONNX graphs."""
import numpy as np

from stages.report import onnx_cost
from shared.artifacts import onnx_precision
from stages.report.pareto import pareto_front

from conftest import SIZE, build_model


def test_pareto_hand_made():
    # (cost, AP): b dominates c (cheaper, better); d ties a on cost but is worse; e is NaN
    costs = [10, 20, 30, 10, 5, float("nan"), 40]
    aps = [0.5, 0.8, 0.7, 0.4, 0.1, 0.99, 0.9]
    assert pareto_front(costs, aps) == [4, 0, 1, 6]


def test_pareto_duplicates_and_empty():
    assert pareto_front([1, 1], [0.5, 0.5]) == [0, 1]
    assert pareto_front([], []) == []


def test_cost_of_tiny_models(tmp_path):
    enh = onnx_cost.cost(build_model("enhancer", tmp_path / "enhancer.onnx"))
    # conv 3x3, 3->3 + bias = 84 weights (clip bounds are not parameters); MACs = H*W*3 * 3*3*3
    assert enh["params"] == 3 * 3 * 3 * 3 + 3
    assert enh["macs"] == SIZE * SIZE * 3 * 27
    assert enh["bytes"] == (tmp_path / "enhancer.onnx").stat().st_size
    assert enh["weight_bytes"] == 4 * enh["params"]  # FP32
    det = onnx_cost.cost(build_model("yunet", tmp_path / "yunet.onnx"))
    # per stride s: conv s x s stride s, 3->16: params 16*3*s*s + 16, MACs (SIZE/s)^2 * 16 * 3*s*s
    assert det["params"] == sum(16 * 3 * s * s + 16 for s in (8, 16, 32))
    assert det["macs"] == sum((SIZE // s) ** 2 * 16 * 3 * s * s for s in (8, 16, 32))
    pipe = onnx_cost.cost(build_model("pipeline", tmp_path / "pipeline.onnx"))
    assert pipe["params"] == 2 * enh["params"] + det["params"] + 1  # + the 255 scale
    assert pipe["macs"] == 2 * enh["macs"] + det["macs"]


def test_quantized_graph_precision_and_params(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.int8), "w_q")
    nodes = [helper.make_node("QuantizeLinear", ["input", "s", "zp"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["x"]),
             helper.make_node("DequantizeLinear", ["w_q", "s", "zp"], ["w"]),
             helper.make_node("Conv", ["x", "w"], ["out"])]
    g = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 8, 8])],
                          [w, numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.int8(0), "zp")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "enhancer_int8.onnx"))
    assert onnx_precision(tmp_path / "enhancer_int8.onnx") == "int8"     # what the writing stage records
    c = onnx_cost.cost(tmp_path / "enhancer_int8.onnx")
    assert c["params"] == 12 and c["macs"] == 8 * 8 * 4 * 3
    assert c["weight_bytes"] == 12  # int8 weights: 1 B each; the scale and zero point are not weights
    assert c["bytes"] > c["weight_bytes"]


def test_ptq_grid_reads_the_quantize_stage_table(tmp_path):
    """The quantize stage's own results.csv layout: sim_/onnx_ metric pairs, bytes, gap; AP for detection units."""
    from stages.report.plots import ptq_grid
    head = ("candidate,model,method,bits,seed,sim_psnr,sim_ssim,onnx_psnr,onnx_ssim,max_gap,int8_bytes,fp32_bytes,"
            "sim_ap,sim_nme,sim_top_box_iou,sim_missed,onnx_ap,onnx_nme,onnx_top_box_iou,onnx_missed\n")
    rows = ["train-fp32,denoiser,ptq:none,W8A8,0,33.1,0.77,33.1,0.77,0.001,81383,236236,,,,,,,,"]
    for model in ("detector", "pipeline"):
        for method in ("fp32", "ptq:none", "ptq:bn_fold+cle"):
            for seed in (0, 1):
                ap = 0.9 - 0.01 * seed - (0.02 if method != "fp32" else 0)
                rows.append(f"train-fp32,{model},{method},W8A8,{seed},,,,,0.004,1000,3000,{ap},0.5,0.7,3,{ap},0.5,0.7,3")
    table = tmp_path / "results.csv"
    table.write_text(head + "\n".join(rows) + "\n")
    assert ptq_grid(table, tmp_path / "grid.png") is None
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_joint_series_compares_only_joint_and_independent_rows(tmp_path):
    from stages.report.plots import joint_series
    (tmp_path / "prune").mkdir()
    (tmp_path / "prune" / "table.csv").write_text(
        "variant,mode,ratio,ap\nfp32,fp32,0.0,0.9\nind,independent,0.5,0.3\nj1,joint,0.5,0.37\nj2,joint,0.5,0.39\n"
        "nncf,sparsity,0.5,0.74\nedgy,edgy_filter_pruning,0.4,0.46\n")
    (tmp_path / "quantize").mkdir()
    (tmp_path / "quantize" / "results.csv").write_text(
        "model,method,bits,onnx_ap\npipeline,fp32,FP32,0.905\npipeline,ptq:none,W8A8,0.9\n"
        "pipeline,joint_qat,W8A8,0.90\npipeline,independent_qat_chained,W8A8,0.87\n")
    series, used = joint_series([tmp_path / "prune" / "table.csv", tmp_path / "quantize" / "results.csv"])
    assert len(used) == 2
    assert {k: dict(v) for k, v in series.items()} == {
        "prune:independent": {"0.5": [0.3]}, "prune:joint": {"0.5": [0.37, 0.39]},
        "quantize:joint": {"W8A8": [0.90]}, "quantize:independent": {"W8A8": [0.87]}}

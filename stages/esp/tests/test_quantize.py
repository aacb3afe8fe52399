"""A small CNN built with torch here, exported to ONNX and quantized to .espdl; the error report; the int16 rule."""
import logging

import pytest
import torch

from stages.esp.graph import UnsupportedOp, check_ops, cut_before
from stages.esp.quantize import error_report, make_setting, quantize, read_report, select_int16, with_followers

LOG = logging.getLogger("test")


@pytest.fixture(scope="module")
def small_cnn(tmp_path_factory):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 4, 1)).eval()
    path = tmp_path_factory.mktemp("cnn") / "cnn.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3, 16, 16),), str(path), input_names=["input"], output_names=["out"],
                      opset_version=13, dynamo=False)
    return path


def test_small_cnn_to_espdl_with_error_report(small_cnn, tmp_path):
    calib = [torch.rand(1, 3, 16, 16) for _ in range(2)]
    before = small_cnn.read_bytes()
    g, secs = quantize(small_cnn, tmp_path, "int8", calib, 8, make_setting(8, "minmax", [], "esp32s3"), "esp32s3", LOG)
    assert small_cnn.read_bytes() == before  # esp-ppq rewrote a copy, not our file
    for ext in ("espdl", "info", "ppq.json", "ppq.log"):
        assert (tmp_path / f"int8.{ext}").stat().st_size > 0
    assert not (tmp_path / "int8.json").exists()   # renamed: a record of the run (shared.manifest.RECORD_FILES)
    assert "Conv" in (tmp_path / "int8.info").read_text()
    rows = error_report(g, calib, 1, tmp_path / "int8_error_report.csv")
    parsed = read_report(tmp_path / "int8_error_report.csv")
    assert len(parsed) == 3 and [r["layer"] for r in parsed] == [r["layer"] for r in rows]  # the three convs (relus fused)
    assert all(r["type"] == "Conv" and r["bits"] == 8 and r["graphwise_nsr"] >= 0 and r["marginal_nsr"] >= 0
               for r in parsed)
    assert any(r["graphwise_nsr"] > 0 for r in parsed)  # int8 is not lossless
    # the mixed rule on the real report: the noisiest conv (+ its relu) to int16, re-quantized
    worst = max(parsed, key=lambda r: r["marginal_nsr"])["layer"]
    ops = with_followers(g, select_int16(parsed, 0.0, 1))
    assert ops[0] == worst
    g2, _ = quantize(small_cnn, tmp_path, "mixed", calib, 8, make_setting(8, "minmax", ops, "esp32s3"), "esp32s3", LOG)
    from stages.esp.quantize import op_bits
    assert op_bits(g2.operations[worst]) == 16
    assert sorted(op_bits(op) for op in g2.operations.values() if op.type == "Conv").count(8) == 2


def test_int16_dispatch_rule():
    rows = [{"layer": n, "layerwise_nsr": lw, "graphwise_nsr": gw, "marginal_nsr": mg}
            for n, lw, gw, mg in (("a", 0.01, 0.01, 0.01), ("b", 0.20, 0.25, 0.24), ("c", 0.06, 0.30, 0.05),
                                  ("d", 0.5, 0.5, 0.2))]
    assert select_int16(rows, 0.1) == ["b", "d"]              # marginal NSR > 0.1, noisiest first
    assert select_int16(rows, 0.1, max_layers=1) == ["b"]
    assert select_int16(rows, 0.05, measure="layerwise") == ["d", "b", "c"]
    assert select_int16(rows, 0.28, measure="graphwise") == ["d", "c"]
    assert select_int16(rows, 0.9) == []


def test_read_report_names_bad_row(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("layer,type,layerwise_nsr,graphwise_nsr,marginal_nsr,bits\nx,Conv,oops,0,0,8\n")
    with pytest.raises(ValueError, match=r"r.csv:2: bad error-report row"):
        read_report(p)


def test_unsupported_op_named_and_cut(small_cnn, tmp_path):
    with pytest.raises(UnsupportedOp, match=r"op 'Conv' \(node '.+'\) is not supported.*esp.cut.cnn"):
        check_ops(small_cnn, "cnn", supported={"Relu"})
    import onnx
    last = onnx.load(str(small_cnn)).graph.node[-1].name
    outs = cut_before(small_cnn, tmp_path / "cut.onnx", last)
    g = onnx.load(str(tmp_path / "cut.onnx")).graph
    assert [o.name for o in g.output] == outs and len(g.node) == 4
    assert check_ops(tmp_path / "cut.onnx", "cnn") == ["Conv", "Relu"]
    with pytest.raises(KeyError, match="no node named 'nope'"):
        cut_before(small_cnn, tmp_path / "x.onnx", "nope")

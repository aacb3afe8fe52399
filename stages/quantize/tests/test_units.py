"""Fast unit tests: grid validation, INQ powers of two, EDGY/NNCF config parsing."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from shared.edgy import EdgyConfigError
from stages.quantize import grid, inq, nncf_ptq

PTQ = {"techniques": ["none", "bn_fold+cle"], "adaround": [False, True], "seeds": [0, 1],
       "bitwidths": ["W8A8"], "quant_scheme": "min_max"}


def test_grid_expands_the_product():
    cells = grid.expand(PTQ)
    assert len(cells) == 8
    assert {c.method for c in cells} == {"ptq:none", "ptq:none+adaround", "ptq:bn_fold+cle", "ptq:bn_fold+cle+adaround"}
    assert cells[0].param_bw == 8 and cells[0].output_bw == 8
    assert grid.expand({**PTQ, "bitwidths": ["W4A8"]})[0].param_bw == 4


def test_grid_rejects_unknown_technique():
    with pytest.raises(grid.GridError, match=r"quantize.ptq.techniques: unknown value 'adaquant' \(known: none, bn_fold, cle, bn_fold\+cle\)"):
        grid.expand({**PTQ, "techniques": ["none", "adaquant"]})
    with pytest.raises(grid.GridError, match="ptq.bitwidths"):
        grid.expand({**PTQ, "bitwidths": ["W2A2"]})


def test_config_file_with_unknown_technique_is_rejected(tmp_path):
    from shared.config import load_config
    cfg = tmp_path / "bad.yaml"  # self-contained: the image carries no configs/
    cfg.write_text("run: t\nquantize:\n  ptq:\n    techniques: [none, magic]\n")
    with pytest.raises(grid.GridError, match=r"quantize.ptq.techniques: unknown value 'magic'"):
        grid.expand(load_config(cfg)["quantize"]["ptq"])
    with pytest.raises(grid.GridError, match=r"quantize.models: unknown value 'yolo'"):
        grid.check_models(["pipeline", "yolo"])


@pytest.mark.parametrize("how", ["magnitude", "random"])
def test_inq_turns_fraction_into_powers_of_two(how):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), torch.nn.Conv2d(16, 8, 1))
    before = [p.detach().clone() for p in inq.weights(model)]
    state = inq.INQ(model, bits=5, how=how, seed=0)
    state.step(0.5)
    for p, m, b in zip(state.params, state.masks, before):
        assert abs(float(m.float().mean()) - 0.5) < 0.02
        assert bool(inq.is_pow2_or_zero(p[m]).all())               # frozen: exact powers of two (or 0)
        assert torch.equal(p[~m], b[~m])                            # free: untouched
        n1, n2 = inq.pow2_levels(b, 5)
        nz = p[m][p[m] != 0].abs()
        assert float(nz.max()) <= 2.0 ** n1 and float(nz.min()) >= 2.0 ** n2
        if how == "magnitude":                                      # the largest weights go first
            assert float(b[m].abs().min()) >= float(b[~m].abs().max()) - 1e-7
    # a training step leaves the frozen weights alone
    x = torch.randn(2, 3, 8, 8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(x).pow(2).mean().backward()
    opt.step()
    state.apply()
    for p, m, t in zip(state.params, state.masks, state.targets):
        assert torch.equal(p[m], t[m])
    state.step(1.0)
    assert state.frozen_fraction() == 1.0
    assert bool(inq.is_pow2_or_zero(torch.cat([p.detach().flatten() for p in state.params])).all())


def test_inq_rejects_bad_schedule():
    with pytest.raises(ValueError, match="inq.schedule"):
        inq.run_inq(torch.nn.Conv2d(1, 1, 1), [0.8, 0.5], 5, "magnitude", 0)


def test_edgy_quantization_entry(tmp_path):
    p = tmp_path / "edgy.json"
    p.write_text(json.dumps({"compression": [{"algorithm": "filter_pruning", "params": {"pruning_target": 0.4}},
                                             {"algorithm": "quantization", "initializer": {"range": {"num_init_samples": 16}},
                                              "activations": {"mode": "asymmetric"}, "ignored_scopes": ["x"]}]}))
    args = nncf_ptq.from_edgy(p, 64)
    assert args["preset"] == "mixed" and args["subset_size"] == 16 and args["ignored"] == ["x"]
    p.write_text(json.dumps({"compression": {"algorithm": "quantization", "bogus": 1}}))
    with pytest.raises(EdgyConfigError, match=r"edgy.json: compression\[0\].bogus: unsupported key"):
        nncf_ptq.from_edgy(p, 64)
    p.write_text(json.dumps({"compression": {"algorithm": "quantization", "weights": {"bits": 4}}}))
    with pytest.raises(EdgyConfigError, match=r"compression\[0\].weights.bits: nncf.quantize is INT8 only"):
        nncf_ptq.from_edgy(p, 64)


def test_ort_reference_int8_and_bench(tmp_path):
    import onnx
    from stages.quantize import onnx_io
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1)).eval()
    fp32 = tmp_path / "fp32.onnx"
    torch.onnx.export(model, torch.rand(1, 3, 16, 16), str(fp32), input_names=["input"], opset_version=13, dynamo=False)
    calib = [np.random.default_rng(i).random((1, 3, 16, 16), np.float32) for i in range(3)]
    ref = onnx_io.ort_static_int8(fp32, calib, tmp_path / ".bench" / "ref.onnx")   # its folder is made
    ops = {n.op_type for n in onnx.load(str(ref)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and not (tmp_path / ".bench" / "ref_pre.onnx").exists()
    b = onnx_io.bench_pair(fp32, ref, calib[0], 2, ref)
    for label in ("1_thread", "all_threads"):
        assert b[label]["ort_int8_ms"] > 0 and b[label]["ort_int8_speedup"] > 0 and b[label]["speedup"] > 0


def test_adaround_models_limit_the_adaround_cells():
    ptq = {"techniques": ["none"], "adaround": [False, True], "seeds": [0], "bitwidths": ["W8A8"],
           "quant_scheme": "min_max", "adaround_models": ["detector"]}
    cells = grid.expand(ptq)
    assert [c.adaround for c in grid.cells_for(cells, ptq, "detector")] == [False, True]
    assert [c.adaround for c in grid.cells_for(cells, ptq, "pipeline")] == [False]
    assert len(grid.cells_for(cells, {**ptq, "adaround_models": None}, "pipeline")) == 2
    with pytest.raises(grid.GridError, match="ptq.adaround_models: unknown value 'yunet'"):
        grid.expand({**ptq, "adaround_models": ["yunet"]})

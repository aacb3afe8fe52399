"""AIMET QuantSim round trip on a small model and its QDQ export in ONNX Runtime."""
from __future__ import annotations

import json

import numpy as np
import torch

from stages.quantize import aimet_ptq, onnx_io
from stages.quantize.grid import Cell


def _small():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, 3, 3, padding=1)).eval()


def test_quantsim_round_trip_and_qdq_export(tmp_path):
    model = _small()
    calib = [torch.rand(4, 3, 16, 16)]
    cell = Cell("bn_fold+cle", False, "W8A8", 0, "min_max")
    sim, prepared = aimet_ptq.ptq(model, cell, calib, tmp_path / "work", 10)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        ref, q = model(x), sim.model(x)
    err = float((ref - q).abs().max())
    scale = float(ref.abs().max())
    assert 0 < err < 0.05 * scale                     # quantized, yet close to FP32
    info = onnx_io.export_qdq(sim, "denoiser", x[:1], tmp_path / "m", 13, int8_weights=True)
    enc = json.loads((tmp_path / info["encodings"]).read_text())
    assert enc["param_encodings"] and enc["activation_encodings"]
    assert info["qdq_nodes"] > 0 and info["weight_dtypes"].get("INT8", 0) >= 8 * 3 * 9
    import onnxruntime as ort
    sess = ort.InferenceSession(str(tmp_path / info["onnx"]), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": x[:1].numpy()})[0]
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = ort.InferenceSession(str(tmp_path / info["onnx"]), so, providers=["CPUExecutionProvider"])
    out_plain = plain.run(None, {"input": x[:1].numpy()})[0]
    print("ort-vs-sim", np.abs(out - q[:1].numpy()).max(), "unoptimized", np.abs(out_plain - q[:1].numpy()).max(), "err", err)
    assert np.abs(out_plain - q[:1].numpy()).max() < 0.02 * scale    # ONNX Runtime agrees with the sim
    fp32 = onnx_io.export_fp32(model, "denoiser", x[:1], tmp_path / "fp32.onnx", 13)
    assert onnx_io.weight_bytes(fp32)["weight_bytes"] > info["weight_bytes"] - 4 * 8 * 4   # int8 weights are smaller

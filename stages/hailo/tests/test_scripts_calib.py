"""Model scripts from the config, calibration arrays, DFC downgrade detection."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from shared.data import load_split
from stages.hailo import alls, calib, dfclog, graph


@pytest.fixture
def group(work):
    return {r: graph.inspect(work / "train" / f"{r}.onnx", r) for r in ("enhancer", "denoiser", "yunet")}


def test_alls_per_model_from_config(group, hailo_cfg):
    cfg = copy.deepcopy(hailo_cfg)
    cfg.update(optimization_level=3, compression_level=1, compiler_optimization_level="max")
    cfg["a16_w16"] = {"enhancer": ["output_layer*"], "denoiser": ["conv3", "conv4"], "yunet": []}
    cfg["calibration"]["batch_size"] = 16
    enh, den, yun = (alls.generate(group[r], cfg, 4) for r in ("enhancer", "denoiser", "yunet"))
    for text in (enh, den, yun):
        assert "model_optimization_flavor(optimization_level=3, compression_level=1)" in text
        assert "model_optimization_config(calibration, batch_size=4, calibset_size=4)" in text
        assert "performance_param(compiler_optimization_level=max)" in text
    assert "normalization1 = normalization([0.0, 0.0, 0.0], [255.0, 255.0, 255.0])" in enh
    assert "normalization" not in yun                      # YuNet takes raw 0..255 pixels
    assert "quantization_param({output_layer*}, precision_mode=a16_w16)" in enh
    assert "quantization_param([denoiser/conv3, denoiser/conv4], precision_mode=a16_w16)" in den
    assert "quantization_param" not in yun
    cfg["normalize_restoration"] = False
    assert "normalization" not in alls.generate(group["enhancer"], cfg, 4)


@pytest.mark.parametrize("source", ["dataset", "chain"])
def test_calibration_arrays(work, group, hailo_cfg, source, tmp_path):
    cfg = copy.deepcopy(hailo_cfg)
    run_cfg = {"calibration": {"source": source, "images": 3}, "eval": {"variant": "1_noisy"}}
    split = load_split(work / "dataset", "calibration")
    inputs = calib.chain_inputs(split, group, run_cfg, 0)
    for role, info in group.items():
        arr = calib.to_calib(inputs[role], alls.input_scale(role, cfg))
        assert arr.shape == (3, 64, 64, 3) and arr.dtype == np.float32 and arr.flags.c_contiguous
        stats = calib.save(arr, tmp_path / role / "calib.npy")
        assert np.load(tmp_path / role / "calib.npy").shape == (3, 64, 64, 3)
        assert stats["max"] > 100                     # 0..255 units, pre-normalisation
        if source == "dataset":
            assert 0.0 <= stats["min"] and stats["max"] <= 255.0
    if source == "chain":                             # the denoiser sees the enhancer's output, not the input
        assert not np.allclose(inputs["denoiser"], inputs["enhancer"])
    cfg["normalize_restoration"] = False
    arr = calib.to_calib(inputs["enhancer"], alls.input_scale("enhancer", cfg))
    assert arr.max() <= 1.5                           # [0, 1] when the script does not normalise


def test_downgrade_lines_are_caught(tmp_path):
    import logging
    found: list = []
    (tmp_path / dfclog.DFC_LOG).write_text("old line\n")
    with dfclog.watch(tmp_path, found):
        logging.getLogger("hailo_sdk_client.test").warning(
            "Reducing optimization level to 0 (the accuracy won't be optimized and compression won't be used) "
            "because there's no available GPU")
        with open(tmp_path / dfclog.DFC_LOG, "a") as fh:
            fh.write("[warning] Reducing compression level to 0 because of x\nall good\n")
    assert len(found) == 2 and "no available GPU" in found[0] and "compression level" in found[1]
    assert dfclog.downgrade_lines("[info] Model Optimization is done") == []

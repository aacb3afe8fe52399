"""The stage without the SDK: everything before the DFC runs, its files land, the manifest says skipped."""
from __future__ import annotations

import copy
import json
import logging
import math

import numpy as np
import pytest

from shared.artifacts import check_manifest
from shared.stage import StageContext
from stages.hailo import sdk, steps


def _ctx(work, full_config, tmp_path, **over):
    config = copy.deepcopy(full_config)
    config["hailo"].update(over)
    config["eval"]["batch"] = 2
    out = tmp_path / "out"
    out.mkdir(parents=True)
    return StageContext("hailo", config["hailo"], config, work, out, 0, logging.getLogger("test"),
                        {"dataset": work / "dataset", "train": work / "train"}, {})


@pytest.mark.skipif(sdk.dfc_version() is not None, reason="the Hailo DFC is installed here")
def test_run_without_sdk(work, full_config, tmp_path):
    ctx = _ctx(work, full_config, tmp_path)
    result = steps.run(ctx)
    assert result["skipped"].startswith("Hailo DFC wheel not found in volumes/wheelhouse (get it from Hailo's Developer Zone")
    out = ctx.out / "train"
    for name in ("enhancer", "denoiser", "yunet"):
        assert (out / name / f"{name}.alls").read_text().startswith(f"# {name} ")
        assert np.load(out / name / "calib.npy").shape == (4, 64, 64, 3)
    models = json.loads((ctx.out / "models.json").read_text())
    assert models["train/yunet"]["end_nodes"]["kps_32"] == "/bbox_head/multi_level_kps.2/conv2/Conv"
    m = result["metrics"]
    head = m["chains"]["train"]["fp32_onnx_headline"]
    assert set(head) == {"enhancer", "denoiser", "yunet", "chain_ap", "chain_psnr"}
    assert all(math.isfinite(v) for v in head.values())
    # the mini restoration nets add a small residual: PSNR close to the input's, not equal
    enh = m["chains"]["train"]["fp32_onnx"]["enhancer"]
    assert abs(enh["psnr"] - enh["psnr_input"]) < 3.0 and enh["n_images"] == 4
    assert m["sdk"]["dfc"] is None and m["sdk"]["default_pair"] == ["3.33", "4.23"]
    assert json.loads((ctx.out / "metrics.json").read_text())["hw_arch"] == "hailo8"
    # no model file without the DFC (scripts and calibration sets only): no artifact record, a valid list
    assert ctx.artifacts == []
    check_manifest({"stage": "hailo", "artifacts": ctx.artifacts, "chains": ctx.chains}, ctx.out)


def test_candidates_are_checked(work, full_config, tmp_path):
    from shared.manifest import MissingInput
    from stages.hailo.graph import GraphError
    with pytest.raises(GraphError, match="must be <upstream stage>/<path>.onnx"):
        steps.group_candidates(_ctx(work, full_config, tmp_path, candidates=["enhancer.onnx"]))
    with pytest.raises(MissingInput, match="'prune' is not a declared dependency"):
        steps.group_candidates(_ctx(work, full_config, tmp_path / "b", candidates=["prune/variants/a/enhancer.onnx"]))


def test_chains_from_subfolders(work, full_config, tmp_path):
    import shutil
    sub = work / "train" / "variants" / "joint_50"
    sub.mkdir(parents=True, exist_ok=True)
    for r in ("enhancer", "yunet"):
        shutil.copy(work / "train" / f"{r}.onnx", sub / f"{r}.onnx")
    cands = ["train/enhancer.onnx", "train/variants/joint_50/enhancer.onnx", "train/variants/joint_50/yunet.onnx"]
    chains = steps.group_candidates(_ctx(work, full_config, tmp_path, candidates=cands))
    assert sorted(chains) == ["train", "train_variants_joint_50"]
    assert chains["train_variants_joint_50"]["yunet"].name == "train_variants_joint_50_yunet"
    with pytest.raises(Exception, match="two enhancer models"):
        steps.group_candidates(_ctx(work, full_config, tmp_path / "c", candidates=cands[:1] * 2))


def test_skipped_upstream_is_passed_on(work, full_config, tmp_path):
    ctx = _ctx(work, full_config, tmp_path)
    ctx.input_manifests["train"] = {"skipped": "needs mmdet"}
    assert steps.run(ctx)["skipped"] == "needs the train stage's ONNX models, but train was skipped (needs mmdet)"

"""The stage's plan: variant names from the config, clear errors for bad values."""
from __future__ import annotations

import copy

import pytest

from shared.config import ConfigError, defaults, load_schema
from stages.prune.steps import plan

CFG = defaults(load_schema())["prune"]


def test_default_plan():
    names = [j["name"] for j in plan(CFG)]
    assert names == ["independent_l2_r30", "joint_l2_r30", "independent_l2_r50", "joint_l2_r50",
                     "nncf_magnitude_global_r50"]


def test_edgy_and_weight_sets():
    cfg = copy.deepcopy(CFG)
    cfg.update(ratios=[0.5], modes=["joint"], edgy=["configs/edgy/quantization_int8.json"])
    cfg["joint"]["weights"] = [[1, 0, 0], [1, 0.1, 0.1]]
    jobs = plan(cfg)
    assert [j["name"] for j in jobs] == ["joint_l2_r50_w1-0-0", "joint_l2_r50_w1-0.1-0.1",
                                         "nncf_magnitude_global_r50", "edgy_quantization_int8",
                                         "edgy_quantization_int8_1"]
    assert jobs[3]["kind"] == "joint" and jobs[3]["ratio"] == 0.4 and jobs[4]["kind"] == "recorded"


@pytest.mark.parametrize("key,value,msg", [
    ("modes", ["joint", "jmmc"], "prune.modes[1]"),
    ("ratios", [1.2], "prune.ratios"),
    ("joint", {"weights": [[1, 0]]}, "prune.joint.weights[0]"),
    ("finetune", {**CFG["finetune"], "crop": 100}, "prune.finetune.crop: 100 must be a multiple of 16"),
])
def test_bad_values(key, value, msg):
    cfg = copy.deepcopy(CFG)
    cfg[key] = value
    with pytest.raises(ConfigError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        plan(cfg)


def test_budget_job():
    cfg = copy.deepcopy(CFG)
    cfg.update(ratios=[0.5], modes=["joint"], importance="taylor")
    cfg["budget"] = {**cfg["budget"], "max_ap_drop": 0.01}
    jobs = plan(cfg)
    assert [j["name"] for j in jobs] == ["joint_taylor_r50", "joint_budget", "nncf_magnitude_global_r50"]
    assert jobs[1]["kind"] == "budget" and jobs[1]["importance"] == "taylor"
    assert CFG["budget"]["max_ap_drop"] is None and "joint_budget" not in [j["name"] for j in plan(CFG)]
    cfg["budget"].update(lo=0.6, hi=0.4)
    with pytest.raises(ConfigError, match=r"prune.budget: need 0 < lo <= hi < 1"):
        plan(cfg)

"""The accuracy-budget search stops at the right ratio (toy accuracy curves), and budget_joint
prunes on from the last accepted chain with ratios that compose to the probed one."""
from __future__ import annotations

import logging

import pytest
import torch

from stages.prune import variants
from stages.prune.budget import search


def knee(at: float, slope: float = 0.5):
    """AP drop 0 up to ratio ``at``, then rising linearly: the budget 0.01 holds up to at + 0.01 / slope."""
    return lambda r: max(0.0, r - at) * slope


@pytest.mark.parametrize("at,expect", [(0.43, 0.45), (0.6, 0.62), (0.25, 0.27)])
def test_stops_at_the_largest_ratio_inside_the_budget(at, expect):
    calls = []
    curve = knee(at)
    res = search(lambda r: calls.append(r) or curve(r), 0.01, 0.2, 0.8, probes=12)
    assert res["best"] == pytest.approx(expect)
    assert calls[:2] == [0.2, 0.8] and len(calls) == len(set(calls)) <= 12   # lo, hi, then bisection; no repeats
    assert all(p["accepted"] == (p["drop"] <= 0.01 + 1e-9) for p in res["probes"])
    # the answer is the largest accepted probe, and one grid step above it was rejected
    assert res["best"] == max(p["ratio"] for p in res["probes"] if p["accepted"])
    assert any(not p["accepted"] and p["ratio"] == pytest.approx(expect + 0.01) for p in res["probes"])
    assert res["stopped"] == "resolution reached"


def test_few_probes_give_an_accepted_ratio_below_the_knee():
    res = search(knee(0.43), 0.01, 0.2, 0.8, probes=4)
    assert [p["ratio"] for p in res["probes"]] == [0.2, 0.8, 0.5, 0.35]
    assert res["best"] == 0.35 and res["stopped"] == "probes spent"


def test_hi_inside_the_budget_takes_two_probes():
    res = search(knee(0.9), 0.01, 0.2, 0.8, probes=5)
    assert res["best"] == 0.8 and len(res["probes"]) == 2


def test_lo_outside_the_budget_accepts_nothing():
    res = search(knee(0.1), 0.01, 0.2, 0.8, probes=5)
    assert res["best"] is None and len(res["probes"]) == 1


def test_noisy_curve_still_returns_a_measured_accepted_ratio():
    # one unlucky probe (0.5 over the budget although 0.6 would not be): the search stays below it
    res = search(lambda r: 0.02 if r in (0.5, 0.8) else 0.0, 0.01, 0.2, 0.8, probes=10)
    assert res["best"] == 0.49 and res["best"] in [p["ratio"] for p in res["probes"] if p["accepted"]]


@pytest.mark.parametrize("lo,hi,probes", [(0.5, 0.4, 3), (0.0, 0.5, 3), (0.2, 0.8, 0)])
def test_bad_arguments(lo, hi, probes):
    with pytest.raises(ValueError, match="prune.budget"):
        search(knee(0.5), 0.01, lo, hi, probes)


class _Toy(torch.nn.Module):
    """A 'chain' that remembers how pruned it is: channels kept = 64 * (1 - ratio)."""

    def __init__(self, kept: float = 1.0):
        super().__init__()
        self.kept = kept
        self.conv = torch.nn.Conv2d(3, max(1, round(64 * kept)), 1)

    def forward(self, x):
        return self.conv(x)


def test_budget_joint_reuses_the_accepted_chain(monkeypatch):
    calls = []

    def fake_joint(base, rel, importance, weights, env, name, steps, teacher=None, warmup=True):
        calls.append({"from_kept": base.kept, "rel": rel, "steps": steps, "teacher": teacher, "warmup": warmup})
        return _Toy(base.kept * (1 - rel)), {"mode": "joint", "ratio": rel}

    monkeypatch.setattr(variants, "joint", fake_joint)
    cfg = {"steps": 4, "budget": {"max_ap_drop": 0.01, "lo": 0.2, "hi": 0.8, "probes": 4, "reuse": True}}
    env = variants.Env(None, None, (8, 8), cfg, 0, logging.getLogger("test"), torch.device("cpu"))
    fp32 = _Toy()
    curve = knee(0.43)
    model, info = variants.budget_joint(fp32, "l2", (1.0, 0.1, 0.1), env, "jb",
                                        lambda pipe: 0.9 - curve(round(1 - pipe.kept, 6)), 0.9)
    b = info["budget"]
    assert [p["ratio"] for p in b["probes"]] == [0.2, 0.8, 0.5, 0.35]
    assert b["best"] == 0.35 and info["ratio"] == 0.35 and model.kept == pytest.approx(0.65)
    # 0.2 and 0.8 from FP32 would be: 0.2 fresh; 0.8, 0.5, 0.35 from the 0.2 chain (the last accepted)
    assert [c["from_kept"] for c in calls] == pytest.approx([1.0, 0.8, 0.8, 0.8])
    assert calls[0]["steps"] == 4 and calls[1]["steps"] == 3 and calls[3]["steps"] == 2   # ceil(4 * (r - 0.2) / r)
    assert all(c["teacher"] is fp32 for c in calls)                                     # always distilled from FP32
    assert [c["warmup"] for c in calls] == [True, False, False, False]                  # one warm-up, on FP32
    assert [p["from_ratio"] for p in b["probes"]] == [0.0, 0.2, 0.2, 0.2]
    assert all(p["macs"] > 0 and "val_ap" in p for p in b["probes"])


def test_budget_joint_without_reuse_starts_fresh(monkeypatch):
    seen = []
    monkeypatch.setattr(variants, "joint", lambda base, rel, *a, **k: (seen.append(base.kept) or _Toy(1 - rel),
                                                                        {"mode": "joint"}))
    cfg = {"steps": 2, "budget": {"max_ap_drop": 0.01, "lo": 0.2, "hi": 0.8, "probes": 3, "reuse": False}}
    env = variants.Env(None, None, (8, 8), cfg, 0, logging.getLogger("test"), torch.device("cpu"))
    variants.budget_joint(_Toy(), "l2", (1, 0, 0), env, "jb", lambda p: 0.9 - knee(0.43)(round(1 - p.kept, 6)), 0.9)
    assert seen == [1.0, 1.0, 1.0]

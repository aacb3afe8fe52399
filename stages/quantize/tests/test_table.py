"""Results table: CSV + Markdown, mean and spread over seeds; sim-vs-ONNX gap."""
from __future__ import annotations

import csv

import pytest

from stages.quantize import measure, table


def _row(seed, ap, ap_onnx):
    return {"candidate": "train-fp32", "model": "pipeline", "method": "ptq:cle", "bits": "W8A8", "seed": seed,
            "sim": {"ap": ap, "nme": 0.1}, "onnx": {"ap": ap_onnx, "nme": 0.1},
            "max_gap": measure.max_gap(measure.gap({"ap": ap}, {"ap": ap_onnx})), "int8_bytes": 10, "fp32_bytes": 40}


def test_table_mean_and_std_over_seeds(tmp_path):
    summary = table.write([_row(0, 0.5, 0.5), _row(1, 0.7, 0.6)], tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert len(rows) == 2 and float(rows[1]["max_gap"]) == pytest.approx(0.1)
    (s,) = summary
    assert s["seeds"] == 2 and s["sim_ap"] == pytest.approx((0.6, 0.1))
    md = (tmp_path / "results.md").read_text()
    assert "0.6 ± 0.1" in md and "| train-fp32 | pipeline | ptq:cle | W8A8 |" in md


def test_gap_scales_psnr_and_skips_nan():
    g = measure.gap({"psnr": 30.0, "ssim": 0.9, "nme": float("nan")}, {"psnr": 29.0, "ssim": 0.88, "nme": 0.1})
    assert g == pytest.approx({"psnr": -1.0, "ssim": -0.02})
    assert measure.max_gap(g) == pytest.approx(0.02)



def _ctx(roots: dict):
    import logging
    import types
    return types.SimpleNamespace(input=lambda s: roots[s], input_manifests={s: {} for s in roots},
                                 log=logging.getLogger("t"))


def test_candidate_round_trip(tmp_path, tiny_pipe):
    """The train stage's bundle loads back into the same Pipeline; a broken one names the file."""
    import torch

    from shared.models.bundle import save_bundle
    from stages.quantize import candidates
    from stages.quantize.tests.conftest import TINY
    save_bundle(tmp_path, tiny_pipe, TINY, {"stage": "train", "method": "fp32"})
    ctx = _ctx({"train": tmp_path})
    (cand,) = candidates.resolve(ctx, [{"stage": "train", "kind": "fp32"}])
    assert cand.root == tmp_path and cand.name == "train-fp32"
    pipe = candidates.load(cand)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(pipe(x), tiny_pipe(x)))
    with pytest.raises(candidates.CandidateError, match=r"quantize.candidates\[0\]: must be a mapping"):
        candidates.resolve(ctx, [{"stage": "train", "flavour": "x"}])
    (tmp_path / "detector.pt").unlink()
    with pytest.raises(candidates.CandidateError, match="candidate train-fp32: .*detector.pt: missing state dict"):
        candidates.load(cand)


def test_pruned_candidate(tmp_path, tiny_pipe):
    """{stage: prune, kind: <variant>} is <prune out>/variants/<variant>/, loaded at its narrower widths;
    a variant prune did not write fails naming the entry and listing the ones it did."""
    import copy

    import torch

    from shared.models import build_models
    from shared.models.bundle import save_bundle
    from stages.quantize import candidates
    from stages.quantize.tests.conftest import TINY
    narrow = {**TINY, "enhancer": {**TINY["enhancer"], "channels": [3, 6, 5, 7]},
              "detector": {**TINY["detector"], "stage_channels": [[3, 4, 3], [3, 6], [6, 5], [5, 6], [6, 6], [6, 6]]}}
    torch.manual_seed(1)
    pruned = build_models(narrow).eval()          # the shapes torch-pruning leaves behind
    pruned.base_config = copy.deepcopy(TINY)      # what load_bundle sets on the FP32 chain prune copies
    train, prune = tmp_path / "train", tmp_path / "prune"
    save_bundle(train, tiny_pipe, TINY, {"stage": "train", "method": "fp32"})
    save_bundle(prune / "variants" / "joint_l2_r50", pruned, None, {"stage": "prune", "mode": "joint"})
    (prune / "variants" / "fp32").mkdir()        # prune's FP32 row: metrics only, no bundle
    save_bundle(prune / "variants" / "independent_l2_r50", pruned, None, {"stage": "prune"})
    ctx = _ctx({"train": train, "prune": prune})
    cands = candidates.resolve(ctx, [{"stage": "train", "kind": "fp32"}, {"stage": "prune", "kind": "joint_l2_r50"}])
    assert [c.name for c in cands] == ["train-fp32", "prune-joint_l2_r50"]
    assert cands[1].root == prune / "variants" / "joint_l2_r50"
    pipe = candidates.load(cands[1])
    assert pipe.enhancer.stem[0].out_channels == 3
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(pipe(x), pruned(x)))
    with pytest.raises(candidates.CandidateError,
                       match=r"quantize.candidates\[1\] \{stage: prune, kind: joint_l2_r30\}: no model bundle at .*; "
                             r"prune offers: independent_l2_r50, joint_l2_r50$"):
        candidates.resolve(ctx, [{"stage": "train"}, {"stage": "prune", "kind": "joint_l2_r30"}])


def test_candidate_alias_role_and_models(tmp_path, tiny_pipe):
    """kind '@budget' is the variant the prune manifest's aliases name; role and models travel with
    the candidate; a bad role or an unknown alias is one error naming the entry."""
    from shared.models.bundle import save_bundle
    from stages.quantize import candidates
    from stages.quantize.tests.conftest import TINY
    prune = tmp_path / "prune"
    save_bundle(prune / "variants" / "joint_budget_r40", tiny_pipe, TINY, {"stage": "prune"})
    ctx = _ctx({"prune": prune})
    ctx.input_manifests["prune"] = {"metrics": {"aliases": {"budget": "joint_budget_r40"}}}
    (c,) = candidates.resolve(ctx, [{"stage": "prune", "kind": "@budget", "role": "jmmc", "models": ["pipeline"]}])
    assert (c.kind, c.role, c.models) == ("joint_budget_r40", "jmmc", ("pipeline",))
    with pytest.raises(candidates.CandidateError, match=r"candidates\[0\]\.role: 'best' is not one of"):
        candidates.resolve(ctx, [{"stage": "prune", "kind": "@budget", "role": "best"}])
    with pytest.raises(candidates.CandidateError, match=r"prune defines no alias 'twin' \(it has: budget\)"):
        candidates.resolve(ctx, [{"stage": "prune", "kind": "@twin"}])

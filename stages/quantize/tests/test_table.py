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



def test_candidate_round_trip(tmp_path, tiny_pipe):
    """A train-style output dir (models.json + state dicts) loads back into the same Pipeline."""
    import json
    import logging
    import types

    import torch

    from stages.quantize import candidates
    from stages.quantize.tests.conftest import TINY
    (tmp_path / "models.json").write_text(json.dumps(TINY))
    for part in candidates.PARTS:
        torch.save(getattr(tiny_pipe, part).state_dict(), tmp_path / f"{part}.pt")
    ctx = types.SimpleNamespace(input=lambda s: tmp_path, input_manifests={"train": {}}, log=logging.getLogger("t"))
    (cand,) = candidates.resolve(ctx, [{"stage": "train", "kind": "fp32"}])
    pipe = candidates.load(cand)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(pipe(x), tiny_pipe(x)))
    with pytest.raises(candidates.CandidateError, match=r"quantize.candidates\[0\]: must be a mapping"):
        candidates.resolve(ctx, [{"stage": "train", "flavour": "x"}])
    (tmp_path / "detector.pt").unlink()
    with pytest.raises(candidates.CandidateError, match="detector.pt: missing state dict"):
        candidates.load(cand)

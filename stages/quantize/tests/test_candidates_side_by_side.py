"""Candidates side by side (stages/quantize/candidate.py, steps.spread): two candidates run in two
spawned processes give the same rows and artifact records as run one after another in the stage."""
from __future__ import annotations

import json
import logging

import pytest

from stages.quantize import steps
from stages.quantize.tests.test_selection_intervals import CONFIG, MADE_BY, NARROW, _candidate, _dataset

CANDIDATES = ("  candidates: [{stage: train, kind: fp32, models: [denoiser, pipeline]},\n"
              "               {stage: prune, kind: joint_r25, models: [pipeline]}]\n")


def _ctx(root, data, workers: int):
    from shared.config import load_config
    from shared.stage import StageContext
    (root / "c.yaml").write_text(CONFIG + CANDIDATES + f"executor: {{workers: {workers}}}\n")
    config = load_config(root / "c.yaml")
    out = root / "out"
    out.mkdir()
    inputs = {"dataset": data, "train": root.parent / "train", "prune": root.parent / "prune"}
    return StageContext("quantize", config["quantize"], config, root, out, 0, logging.getLogger("test.quantize"),
                        inputs, {s: {} for s in inputs})


def _timeless(obj):
    """The rows without wall times and throughputs (they differ run to run); losses stay."""
    if isinstance(obj, dict):
        return {k: _timeless(v) for k, v in obj.items() if "seconds" not in k and not k.endswith("_per_s")}
    if isinstance(obj, list):
        return [_timeless(v) for v in obj]
    return obj


def test_spread_puts_the_cells_inside_side_by_side_candidates():
    spec = {"kind": "local", "workers": 2, "cpus_per_cell": 1, "address": "", "retries": 2}
    assert steps.spread(spec, 2) == (spec, {**spec, "workers": 1})
    outer, inner = steps.spread(spec, 1)                   # one candidate: its cells are the executor's
    assert outer["workers"] == 1 and inner == spec
    ray = {**spec, "kind": "ray"}
    assert steps.spread(ray, 3) == ({"kind": "local", "workers": 1, "cpus_per_cell": 1}, ray)


def test_a_candidate_with_the_pipeline_and_single_nets_is_two_jobs():
    from stages.quantize import candidate
    assert candidate.parts(["enhancer", "denoiser", "detector", "pipeline"]) == [
        ("enhancer", "denoiser", "detector"), ("pipeline",)]
    assert candidate.parts(["pipeline"]) == [("pipeline",)] and candidate.parts(["detector"]) == [("detector",)]
    jobs = [("detector",), ("pipeline",), ("enhancer", "denoiser", "detector")]
    assert sorted(jobs, key=lambda p: -candidate.weight(p)) == [("enhancer", "denoiser", "detector"), ("pipeline",),
                                                                  ("detector",)]


def test_two_candidates_side_by_side_equal_one_after_another(tmp_path, tiny_pipe):
    import torch
    from shared.models import build_models
    _candidate(tmp_path / "train", tiny_pipe)
    torch.manual_seed(0)
    _candidate(tmp_path / "prune" / "joint_r25", build_models(NARROW).eval(), NARROW, MADE_BY)
    data = _dataset(tmp_path / "dataset")
    runs = {}
    for workers in (1, 2):
        (tmp_path / f"w{workers}").mkdir()
        ctx = _ctx(tmp_path / f"w{workers}", data, workers)
        steps.run(ctx)
        m = json.loads((ctx.out / "metrics.json").read_text())
        runs[workers] = (m, ctx.artifacts)
    (one, art_one), (two, art_two) = runs[1], runs[2]
    assert [r["candidate"] for r in two["rows"]] == [r["candidate"] for r in one["rows"]]
    assert {r["candidate"] for r in two["rows"]} == {"train-fp32", "prune-joint_r25"}
    assert json.dumps(_timeless(two["rows"]), sort_keys=True) == json.dumps(_timeless(one["rows"]), sort_keys=True)
    for key in ("selection", "int8_vs_fp32", "joint_vs_independent"):
        assert two[key] == one[key], key
    assert set(two["benchmark"]) == {"train-fp32", "prune-joint_r25"}
    assert [a["file"] for a in art_two] == [a["file"] for a in art_one] and len(art_two) >= 6
    assert json.dumps(art_two, sort_keys=True, default=float) == json.dumps(art_one, sort_keys=True, default=float)
    assert not (tmp_path / "w2" / "out" / ".cells").exists()


@pytest.fixture(autouse=True)
def _one_thread():
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

"""Prune variants as executor cells (stages/prune/cells.py): two variants built side by side in
spawned processes give the same rows and files as built one after another in this process."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from shared import executor, tiny_data
from shared.config import load_config
from shared.models import build_models
from shared.models.bundle import save_bundle
from stages.prune import cells, measure
from stages.prune.steps import load_fp32, plan

BASE = {"input_size": [32, 32], "enhancer": {"channels": [4, 8, 8, 8], "enc_blocks": [1, 1, 1, 1], "kernel": 3},
        "denoiser": {"channels": [4, 8, 8, 8], "enc_blocks": [1, 1, 1, 1], "kernel": 3},
        "detector": {"stage_channels": [[3, 8, 8], [8, 16], [16, 16], [16, 16], [16, 16], [16, 16]],
                     "feat_channels": 16}}
CONFIG = """run: cells-test
eval: {limit: 2, batch: 2}
prune:
  ratios: [0.5]
  steps: 1
  round_to: 1
  finetune: {epochs: 1, final_epochs: 0, batch_size: 2, limit: 2}
  sparsity: {modes: [], ratios: [0.5]}
  export: {per_model: false}
"""


@pytest.fixture()
def setup(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test", "calibration"):
        tiny_data.write_split(tmp_path / "dataset", split, 2, rng)
    torch.manual_seed(0)
    save_bundle(tmp_path / "train", build_models(BASE).eval(), BASE, {"stage": "train", "method": "fp32"})
    (tmp_path / "run.yaml").write_text(CONFIG)
    return tmp_path, load_config(tmp_path / "run.yaml")


def _jobs(root, config, out):
    return [cells.VariantJob(j, root / "train", root / "dataset", root / out / j["name"], config)
            for j in plan(config["prune"])]


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True, default=float) == json.dumps(b, sort_keys=True, default=float)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_variants_side_by_side_equal_one_after_another(setup):
    root, config = setup
    serial_jobs, parallel_jobs = _jobs(root, config, "serial"), _jobs(root, config, "parallel")
    assert [j.name for j in serial_jobs] == ["independent_l2_r50", "joint_l2_r50"]
    spec = {**config["executor"], "kind": "local"}
    fp32_macs = measure.cost(load_fp32(root / "train"), (32, 32))["pipeline"]["macs"]
    serial = executor.run_cells(cells.variant_cell, serial_jobs, {**spec, "workers": 1}, None)
    parallel = executor.run_cells(cells.variant_cell, parallel_jobs, {**spec, "workers": 2}, None)
    for a, b, ja, jb in zip(serial, parallel, serial_jobs, parallel_jobs):
        assert _same(a["row"], b["row"]) and _same(a["cost"], b["cost"])   # NaN (no landmarks found) == NaN
        assert a["row"]["macs"] < fp32_macs and a["mode"] == ja.job["kind"]   # measured at the pruned widths
        for f in ("pipeline.onnx", "bundle.json", "metrics.json"):
            assert (ja.out / f).is_file() and (jb.out / f).is_file(), f
        assert _digest(ja.out / "pipeline.onnx") == _digest(jb.out / "pipeline.onnx")

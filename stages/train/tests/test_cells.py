"""The trainings as executor cells (stages/train/cells.py): the enhancer and denoiser trained side by
side in two spawned processes end with the same weights as trained one after another in this one."""
from __future__ import annotations

import numpy as np
import torch

from shared import executor, tiny_data
from shared.config import load_config
from stages.train import cells

CONFIG = """run: cells-test
train:
  restoration_channels: [4, 8, 8, 8]
  restoration: {epochs: 1, batch_size: 2, crop: 16}
"""


def test_restoration_cells_side_by_side_equal_one_after_another(tmp_path):
    tiny_data.write_split(tmp_path / "dataset", "train", 4, np.random.default_rng(0))
    (tmp_path / "run.yaml").write_text(CONFIG)
    config = load_config(tmp_path / "run.yaml")
    jobs = [cells.TrainJob(p, tmp_path / "dataset", tmp_path / "out", config, (32, 32)) for p in ("enhancer", "denoiser")]
    spec = {**config["executor"], "kind": "local"}
    serial = executor.run_cells(cells.train_cell, jobs, {**spec, "workers": 1}, None)
    parallel = executor.run_cells(cells.train_cell, jobs, {**spec, "workers": 2}, None)
    for a, b in zip(serial, parallel):
        assert a["state"].keys() == b["state"].keys()
        assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])
        assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]] and len(a["history"]) == 1
    # trained: the two parts moved away from the shared initial weights, differently
    assert not all(torch.equal(serial[0]["state"][k], serial[1]["state"][k]) for k in serial[0]["state"])


def test_the_longest_training_starts_first():
    assert cells.PARTS[0] == "detector" and set(cells.PARTS) == {"detector", "enhancer", "denoiser"}

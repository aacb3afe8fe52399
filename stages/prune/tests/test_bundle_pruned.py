"""Pruned variants are model bundles: the train stage's bundle loads (``load_fp32``), torch-pruning
prunes a copy the way stages/prune/variants.py does, ``measure.made_by`` + ``save_bundle`` write it,
and ``load_bundle`` gives back the same outputs at the pruned widths."""
from __future__ import annotations

import copy
import logging

import pytest
import torch

from shared.config import REPO, load_config
from shared.metrics.cost import count_macs
from shared.models import build_models
from shared.models.bundle import PARTS, load_bundle, save_bundle
from stages.prune import measure
from stages.prune.steps import load_fp32, plan
from stages.prune.structured import channel_widths, ignored_layers, prune_iterative

LOG = logging.getLogger("test")
SMALL = {"channels": [4, 8, 8, 8], "enc_blocks": [1, 1, 1, 1], "kernel": 3}
BASE = {"input_size": [32, 32], "enhancer": SMALL, "denoiser": SMALL,
        "detector": {"stage_channels": [[3, 8, 8], [8, 16], [16, 16], [16, 16], [16, 16], [16, 16]],
                     "feat_channels": 16}}


def _randomise(pipe):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in pipe.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
        for m in pipe.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return pipe.eval()


@pytest.fixture()
def train_dir(tmp_path):
    torch.manual_seed(0)
    save_bundle(tmp_path / "train", _randomise(build_models(BASE)), BASE, {"stage": "train", "method": "fp32"})
    return tmp_path / "train"


def _outputs(pipe):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        outs, e, d = pipe(x, return_intermediate=True)
    return [*outs, e, d]


def _row_cost(pipe):
    c = measure.cost(pipe, (32, 32))
    return {"params": c["pipeline"]["params"], "macs": c["pipeline"]["macs"]}, c


@pytest.mark.parametrize("mode", ["joint", "independent"])
def test_pruned_variant_round_trip(tmp_path, train_dir, mode):
    fp32 = load_fp32(train_dir)
    pipe = copy.deepcopy(fp32)                              # as variants.joint / variants.independent
    x = torch.rand(1, 3, 32, 32)
    if mode == "joint":
        prune_iterative(pipe, x, 0.5, 2, "l2", ignored_layers(pipe, "pipeline"), None, LOG, "joint")
    else:
        for part in PARTS:
            kind = "detector" if part == "detector" else "restoration"
            m = getattr(pipe, part)
            prune_iterative(m, x * 255.0 if kind == "detector" else x, 0.5, 1, "l2", ignored_layers(m, kind),
                            None, LOG, part)
    pipe.eval()
    assert count_macs(pipe, x=x) < 0.8 * count_macs(fp32, x=x)
    row, c = _row_cost(pipe)
    info = {"mode": mode, "ratio": 0.5, "importance": "l2", "steps": 2, "history": [{"step": 0}], "seconds": 1.0,
            "weights": {"w_det": 1.0, "w_den": 0.1, "w_lle": 0.1}}
    save_bundle(tmp_path / "v", pipe, None, measure.made_by(f"{mode}_l2_r50", info, row, c))

    back, rec = load_bundle(tmp_path / "v")
    assert all(torch.equal(a, b) for a, b in zip(_outputs(pipe), _outputs(back)))
    for p in PARTS:
        assert channel_widths(getattr(back, p)) == channel_widths(getattr(pipe, p)) == rec["parts"][p]["widths"]
    mb = rec["made_by"]
    assert mb["stage"] == "prune" and mb["variant"] == f"{mode}_l2_r50" and mb["method"] == mode
    assert mb["ratio"] == 0.5 and mb["importance"] == "l2" and mb["weights"]["w_den"] == 0.1
    assert mb["macs"] == row["macs"] and "history" not in mb and set(mb["cost"]) == {*PARTS, "pipeline"}
    assert rec["base"] == BASE                               # the architecture it was pruned from


def test_smoke_prunes_the_variant_quantize_takes():
    """configs/smoke.yaml's pruned quantize candidate is a variant name plan() produces."""
    smoke = REPO / "configs" / "smoke.yaml"
    if not smoke.exists():
        pytest.skip("configs/smoke.yaml is not in this image (run with the repository mounted)")
    cfg = load_config(smoke)
    names = [j["name"] for j in plan(cfg["prune"])]
    kinds = [c["kind"] for c in cfg["quantize"]["candidates"] if c["stage"] == "prune"]
    assert kinds and all(k in names for k in kinds), (kinds, names)

"""Depth pruning (stages/prune/depth.py): blocks scored by change per activation share, the lowest
removed; the joint and independent variants lose the same blocks; a depth- and channel-pruned chain
is a bundle that loads back."""
from __future__ import annotations

import copy
import logging

import torch

from shared.models import build_models
from shared.models.bundle import load_bundle, save_bundle
from shared.models.restoration import RestorationNet, dropped_blocks, residual_blocks
from stages.prune import depth
from stages.prune.structured import ignored_layers, prune_iterative

LOG = logging.getLogger("test")
SMALL = {"channels": [4, 8, 8, 8], "enc_blocks": [1, 1, 2, 2], "kernel": 3}
BASE = {"input_size": [32, 32], "enhancer": SMALL, "denoiser": SMALL,
        "detector": {"stage_channels": [[3, 8, 8], [8, 16], [16, 16], [16, 16], [16, 16], [16, 16]],
                     "feat_channels": 16}}


def _net(seed=0):
    torch.manual_seed(seed)
    net = RestorationNet(channels=(4, 8, 8, 8), enc_blocks=(1, 1, 2, 2), kernel=3)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net.eval()


def test_scores_are_change_per_activation_share():
    net = _net()
    x = torch.rand(2, 3, 32, 32)
    rows = depth.block_scores(net, x)
    assert [r["block"] for r in rows] == residual_blocks(net)
    assert abs(sum(r["share"] for r in rows) - 1) < 1e-5
    head = next(r for r in rows if r["block"] == "head.0")
    # output elements per image: channels x the block's resolution (the head's: 4 x 32 x 32)
    elements = {"encoders.2.1": 8 * 4 * 4, "encoders.3.1": 8 * 2 * 2, "decoders.0.decode": 8 * 2 * 2,
                "decoders.1.decode": 8 * 4 * 4, "decoders.2.decode": 4 * 8 * 8, "decoders.3.decode": 4 * 16 * 16,
                "head.0": 4 * 32 * 32}
    assert [round(r["share"] * sum(elements.values())) for r in rows] == list(elements.values())
    assert abs(head["share"] - elements["head.0"] / sum(elements.values())) < 1e-5
    seen = {}
    net.head[0].register_forward_hook(lambda m, i, o: seen.update(y=i[0]))
    with torch.no_grad():   # the change is measured: ||branch(x)|| / ||x|| at the block's input
        net(x)
        y = seen["y"]
        branch = net.head[0].conv2(net.head[0].conv1(y))
    assert abs(head["change"] - float(branch.norm() / y.norm())) < 1e-4
    assert abs(head["score"] - head["change"] / head["share"]) < 1e-4


def test_choose_takes_the_lowest_scores_in_forward_order():
    rows = [{"block": "a", "score": 3.0}, {"block": "b", "score": 1.0}, {"block": "c", "score": 2.0},
            {"block": "d", "score": 1.0}]
    assert depth.choose(rows, 2) == ["b", "d"]
    assert depth.choose(rows, 3) == ["b", "c", "d"]
    assert depth.choose(rows, 0) == []


def test_depth_then_channel_pruned_chain_is_a_bundle(tmp_path):
    """Drop blocks, prune channels through the same dependency graph, save, load: same outputs."""
    torch.manual_seed(0)
    fp32 = build_models(BASE).eval()
    with torch.no_grad():
        for p in fp32.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    plan = {part: {"dropped": depth.choose(depth.block_scores(getattr(fp32, part), torch.rand(2, 3, 32, 32)), 2)}
            for part in depth.RESTORATION}
    joint, twin = copy.deepcopy(fp32), copy.deepcopy(fp32)
    depth.apply(joint, plan)
    depth.apply(twin, plan)
    assert dropped_blocks(joint.enhancer) == dropped_blocks(twin.enhancer) == plan["enhancer"]["dropped"]
    x = torch.rand(1, 3, 32, 32)
    prune_iterative(joint, x, 0.5, 1, "l2", ignored_layers(joint, "pipeline"), None, LOG, "joint")
    save_bundle(tmp_path / "v", joint.eval(), BASE, {"stage": "prune", "method": "joint"})
    back, rec = load_bundle(tmp_path / "v")
    assert rec["parts"]["enhancer"]["dropped"] == plan["enhancer"]["dropped"]
    with torch.no_grad():
        for a, b in zip(joint(x), back(x)):
            assert torch.equal(a, b)

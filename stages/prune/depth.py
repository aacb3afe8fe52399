"""Depth pruning: remove whole residual blocks of the restoration nets, ranked by what they add per byte moved.

Channel pruning narrows layers but keeps every one of them, and on a CPU the restoration nets'
full-resolution layers are bound by memory traffic and per-node overhead rather than arithmetic
(README, "Where the time goes"): halving their MACs buys far less than half their time. Removing a
residual block removes its layers outright (``shared.models.restoration.drop_blocks``).

Which blocks: every removable block (``residual_blocks``: DecoderBlocks, identity-projection
EncoderBlocks) of a restoration net is scored on training images as

    score = (||branch(x)|| / ||x||)  /  (its output's elements / the sum over the net's blocks)

i.e. how much the block changes its input, per share of the activation traffic it costs (the
latency proxy the profile supports: time at a resolution follows the tensor sizes there, not the
MACs). The ``blocks`` lowest-scoring blocks of each net go, before channel pruning, so the
fine-tuning that follows every pruning step recovers from both. The scores come from the FP32
nets and their own training inputs, so the joint chain and its independent twin lose the same
blocks and stay comparable at one architecture.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from shared import units
from shared.data import Split, to_float
from shared.models.restoration import drop_blocks, residual_blocks

RESTORATION = ("enhancer", "denoiser")


@torch.no_grad()
def block_scores(net: nn.Module, x: torch.Tensor) -> list[dict]:
    """Per removable block of ``net`` (forward order): relative change, activation share, score."""
    names = residual_blocks(net)
    stats = {n: {"change": 0.0, "input": 0.0, "elements": 0} for n in names}
    hooks = []
    for n in names:
        def hook(_m, inp, out, s=stats[n]):
            s["change"] += float((out - inp[0]).pow(2).sum())
            s["input"] += float(inp[0].pow(2).sum())
            s["elements"] = int(out[0].numel())
        hooks.append(net.get_submodule(n).register_forward_hook(hook))
    was_training = net.training
    try:
        net.eval()
        net(x)
    finally:
        for h in hooks:
            h.remove()
        net.train(was_training)
    total = sum(s["elements"] for s in stats.values()) or 1
    rows = []
    for n in names:
        s = stats[n]
        change = (s["change"] / s["input"]) ** 0.5 if s["input"] > 0 else 0.0
        share = s["elements"] / total
        rows.append({"block": n, "change": round(change, 6), "share": round(share, 6),
                     "score": round(change / share if share > 0 else float("inf"), 6)})
    return rows


def choose(scores: list[dict], blocks: int) -> list[str]:
    """The ``blocks`` lowest-scoring blocks (ties: the earlier block), in forward order."""
    order = sorted(range(len(scores)), key=lambda i: (scores[i]["score"], i))[:blocks]
    return [scores[i]["block"] for i in sorted(order)]


def plan(fp32, train: Split, blocks: int, images: int) -> dict:
    """{part: {"dropped": [...], "scores": [...]}} for the enhancer and denoiser of the FP32 chain."""
    out = {}
    for part in RESTORATION:
        x = torch.from_numpy(to_float(train.images(units.train_variant(part), images))) * units.input_range(part)
        net = getattr(fp32, part)
        scores = block_scores(net, x.to(next(net.parameters()).device))
        out[part] = {"dropped": choose(scores, blocks), "scores": scores}
    return out


def apply(pipe, depth_plan: dict) -> None:
    """Remove the planned blocks from ``pipe``'s restoration nets, in place."""
    for part, p in depth_plan.items():
        drop_blocks(getattr(pipe, part), p["dropped"])

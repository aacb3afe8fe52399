"""torch-pruning really removes channels: fewer params/MACs, same output shapes, ONNX exportable."""
from __future__ import annotations

import logging

import pytest
import torch

from shared.metrics.cost import count_macs, count_params
from shared.models import build_models
from shared.models.restoration import RestorationNet
from stages.prune.structured import channel_widths, ignored_layers, make_importance, prune_iterative

LOG = logging.getLogger("test")


@pytest.mark.parametrize("importance", ["l1", "l2", "fpgm"])
def test_restoration_net_pruned_to_ratio(importance):
    torch.manual_seed(0)
    net = RestorationNet(channels=(8, 16, 16, 16), enc_blocks=(1, 1, 1, 1), kernel=3).eval()
    x = torch.rand(1, 3, 32, 32)
    y0, w0 = net(x), channel_widths(net)
    p0, m0 = count_params(net), count_macs(net, x=x)
    calls = []
    hist = prune_iterative(net, x, 0.5, 2, importance, ignored_layers(net, "restoration"), calls.append, LOG, "t")
    assert calls == [1, 2] and len(hist) == 3
    w1 = channel_widths(net)
    assert sum(w1.values()) < sum(w0.values())
    assert w1["stem.0"] == w0["stem.0"] and w1["head.1"] == 3          # first and last conv kept
    assert count_params(net) < 0.6 * p0 and count_macs(net, x=x) < 0.6 * m0
    assert net(x).shape == y0.shape


def test_joint_pipeline_prune_keeps_outputs():
    torch.manual_seed(0)
    small = {"channels": [4, 8, 8, 8], "enc_blocks": [1, 1, 1, 1], "kernel": 3}
    pipe = build_models({"input_size": [32, 32], "enhancer": small, "denoiser": small}).eval()
    x = torch.rand(1, 3, 32, 32)
    shapes = [o.shape for o in pipe(x)]
    m0 = count_macs(pipe, x=x)
    p0 = {n: count_params(m) for n, m in pipe.named_children()}
    ign = ignored_layers(pipe, "pipeline")
    head = {n: m.out_channels for n, m in pipe.detector.bbox_head.named_modules() if isinstance(m, torch.nn.Conv2d)}
    prune_iterative(pipe, x, 0.5, 1, "l2", ign, None, LOG, "joint")
    assert count_macs(pipe, x=x) < 0.6 * m0                             # >= 40 % fewer MACs
    assert [o.shape for o in pipe(x)] == shapes
    assert {n: m.out_channels for n, m in pipe.detector.bbox_head.named_modules()
            if isinstance(m, torch.nn.Conv2d)} == head                   # detector head untouched
    # all three models lost channels (one graph, global ranking)
    assert all(count_params(m) < p0[n] for n, m in pipe.named_children()), p0


def test_unknown_importance():
    with pytest.raises(ValueError, match="unknown importance"):
        make_importance("taylor")

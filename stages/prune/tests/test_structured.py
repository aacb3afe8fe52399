"""torch-pruning really removes channels: fewer params/MACs, same output shapes, ONNX exportable."""
from __future__ import annotations

import logging

import pytest
import torch

from shared.metrics.cost import count_macs, count_params
from shared.models import build_models
from shared.models.restoration import RestorationNet
from stages.prune.structured import channel_widths, ignored_layers, make_importance, prune_iterative, sparsity_warmup

LOG = logging.getLogger("test")


def _grads(net, x, calls):
    def grads():
        calls.append("grads")
        assert all(p.grad is None for p in net.parameters())   # cleared before each step
        (net(x) ** 2).mean().backward()
    return grads


@pytest.mark.parametrize("importance", ["l1", "l2", "fpgm", "taylor"])
def test_restoration_net_pruned_to_ratio(importance):
    torch.manual_seed(0)
    net = RestorationNet(channels=(8, 16, 16, 16), enc_blocks=(1, 1, 1, 1), kernel=3).eval()
    if importance == "taylor":   # the untrained net's output conv is zero: no gradient would reach the others
        torch.nn.init.normal_(net.head[-1].weight, std=0.1)
    x = torch.rand(1, 3, 32, 32)
    y0, w0 = net(x), channel_widths(net)
    p0, m0 = count_params(net), count_macs(net, x=x)
    calls = []
    hist = prune_iterative(net, x, 0.5, 2, importance, ignored_layers(net, "restoration"), calls.append, LOG, "t",
                           grads=_grads(net, x, calls))
    assert calls == (["grads", 1, "grads", 2] if importance == "taylor" else [1, 2]) and len(hist) == 3
    w1 = channel_widths(net)
    assert sum(w1.values()) < sum(w0.values())
    assert w1["stem.0"] == w0["stem.0"] and w1["head.1"] == 3          # first and last conv kept
    # Taylor ranks by gradients, not size: here it keeps more full-resolution channels (68 % of the MACs)
    assert count_params(net) < 0.6 * p0 and count_macs(net, x=x) < (0.7 if importance == "taylor" else 0.6) * m0
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
        make_importance("snip")


def test_taylor_needs_gradients():
    net = RestorationNet(channels=(8, 16, 16, 16), enc_blocks=(1, 1, 1, 1), kernel=3)
    with pytest.raises(ValueError, match="taylor importance needs grads"):
        prune_iterative(net, torch.rand(1, 3, 32, 32), 0.5, 1, "taylor", [], None, LOG, "t")


def test_taylor_ties_are_broken_by_magnitude():
    """Channels without gradient all score 0 with plain GroupTaylorImportance (and torch-pruning's global
    threshold would remove all of them at once); TaylorImportance orders them by magnitude and keeps
    the Taylor order of the others."""
    import torch_pruning as tp

    from stages.prune.structured import TaylorImportance
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), torch.nn.Conv2d(16, 4, 3))
    x = torch.rand(1, 3, 12, 12)
    dg = tp.DependencyGraph().build_dependency(m, example_inputs=x)
    group = dg.get_pruning_group(m[0], tp.prune_conv_out_channels, idxs=list(range(16)))
    m(x).sum().backward()
    with torch.no_grad():
        m[0].weight.grad[8:] = 0
        m[0].bias.grad[8:] = 0
        m[2].weight.grad[:, 8:] = 0
    plain, broken = tp.importance.GroupTaylorImportance()(group), TaylorImportance()(group)
    mag = tp.importance.GroupMagnitudeImportance(p=2)(group)
    assert (plain[8:] == 0).all() and (plain[:8] > 0).all()
    assert len(set(broken.tolist())) == 16
    assert torch.equal(torch.argsort(broken[8:]), torch.argsort(mag[8:]))
    assert torch.equal(torch.argsort(broken[:8]), torch.argsort(plain[:8]))
    assert broken[8:].max() < plain[:8].min()


def _pruned_widths(round_to, ratio=0.5, steps=1):
    torch.manual_seed(0)
    pipe = build_models({"input_size": [64, 64]}).eval()
    x = torch.rand(1, 3, 64, 64)
    w0 = channel_widths(pipe)
    prune_iterative(pipe, x, ratio, steps, "l2", ignored_layers(pipe, "pipeline"), None, LOG, "joint",
                    round_to=round_to)
    w1 = channel_widths(pipe)
    assert [o.shape for o in pipe(x)] == [o.shape for o in build_models({"input_size": [64, 64]})(x)]
    return w0, w1, {n: w for n, w in w1.items() if w != w0[n]}


def test_round_to_gives_channel_multiples():
    w0, w1, changed = _pruned_widths(8)
    assert len(changed) > 10                                             # many layers were pruned ...
    assert all(w % 8 == 0 and w >= 8 for w in changed.values()), changed  # ... each to a multiple of 8
    assert sum(w1.values()) < 0.8 * sum(w0.values())
    _, _, free = _pruned_widths(None)                                    # without rounding: odd widths appear
    assert any(w % 8 for w in free.values())


def test_sparsity_warmup_adds_the_group_regulariser():
    torch.manual_seed(0)
    net = RestorationNet(channels=(8, 16, 16, 16), enc_blocks=(1, 1, 1, 1), kernel=3).eval()
    torch.nn.init.normal_(net.head[-1].weight, std=0.1)
    x = torch.rand(2, 3, 32, 32)
    changed = []

    def train(after_backward):
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        for _ in range(2):
            opt.zero_grad()
            (net(x) ** 2).mean().backward()
            before = [p.grad.clone() for p in net.parameters()]
            after_backward()
            changed.append(sum(not torch.equal(b, p.grad) for b, p in zip(before, net.parameters())))
            opt.step()
        return "trained"
    assert sparsity_warmup(net, x, ignored_layers(net, "restoration"), 1e-2, train) == "trained"
    assert len(changed) == 2 and all(c > 5 for c in changed)             # the regulariser moved many gradients
    prune_iterative(net, x[:1], 0.5, 1, "l2", ignored_layers(net, "restoration"), None, LOG, "after warm-up")

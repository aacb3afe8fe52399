"""The joint loss reaches all three models; NNCF sparsity reaches its target on the chain."""
from __future__ import annotations

import pytest
import torch

from shared.models import build_models

def _batch():
    torch.manual_seed(0)
    x, clean = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    boxes = [torch.tensor([[10.0, 12.0, 40.0, 46.0]]), torch.tensor([[20.0, 8.0, 50.0, 40.0]])]
    kps = [torch.tensor([[[18.0, 24], [32, 24], [25, 30], [20, 38], [31, 38]]]), None]
    return x, clean, boxes, [k if k is not None else torch.full((1, 5, 2), -1.0) for k in kps]


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 16, 3), torch.nn.Conv2d(16, 8, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


@pytest.mark.parametrize("weights", [(1.0, 0.0, 0.0), (1.0, 0.1, 0.1)])
def test_joint_loss_gradients_reach_all_models(weights):
    pytest.importorskip("mmdet", reason="the joint loss needs mmdet (prune image)")
    from stages.prune.finetuners import JointTerms
    pipe = build_models({"input_size": [64, 64]})
    # the untrained enhancer/denoiser end in a zero conv: give it weights so gradients flow through it
    for net in (pipe.enhancer, pipe.denoiser):
        torch.nn.init.normal_(net.head[-1].weight, std=0.01)
    terms = JointTerms(*weights)(pipe, *_batch())
    assert torch.isfinite(terms["loss"])
    terms["loss"].backward()
    for name in ("enhancer", "denoiser", "detector"):
        grads = [p.grad.abs().sum() for p in getattr(pipe, name).parameters() if p.grad is not None]
        assert grads and float(sum(grads)) > 0, name


def test_nncf_magnitude_sparsity_reaches_target():
    import nncf
    from nncf.torch.function_hook.pruning.magnitude.algo import update_pruning_ratio

    from stages.prune.sparsity import sparsity_stats
    net = _Net()  # not an nn.Sequential: NNCF adds its hook storage as a child module
    x = torch.rand(1, 3, 16, 16)
    m = nncf.prune(net, mode=nncf.PruneMode.UNSTRUCTURED_MAGNITUDE_GLOBAL, ratio=0.3, examples_inputs=x)
    update_pruning_ratio(m, mode=nncf.PruneMode.UNSTRUCTURED_MAGNITUDE_GLOBAL, ratio=0.6)
    stripped = nncf.strip(m, do_copy=True, strip_format=nncf.StripFormat.IN_PLACE)
    s = sparsity_stats(stripped)
    assert 0.58 <= s["weight_sparsity"] <= 0.62
    assert stripped(x).shape == (1, 8, 12, 12)

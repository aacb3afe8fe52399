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


def _student_teacher():
    """A chain (with non-zero output convs, so gradients flow) and its frozen, then perturbed, student."""
    from shared.jmmc import frozen_copy
    torch.manual_seed(1)
    pipe = build_models({"input_size": [64, 64]})
    for net in (pipe.enhancer, pipe.denoiser):
        torch.nn.init.normal_(net.head[-1].weight, std=0.01)
    teacher = frozen_copy(pipe)
    with torch.no_grad():
        for p in pipe.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return pipe, teacher


def test_distillation_gradients_reach_all_three_models():
    pytest.importorskip("mmdet", reason="the joint loss needs mmdet (prune image)")
    from shared.jmmc import JointLoss
    student, teacher = _student_teacher()
    before = [p.clone() for p in teacher.parameters()]
    # the distillation terms alone: detector and restoration losses weighted 0
    loss = JointLoss(w_det=0.0, w_den=0.0, w_lle=0.0, teacher=teacher, w_kd_img=10.0, w_kd_det=1.0)
    x, clean, boxes, kps = _batch()
    terms = loss(student, x, clean, boxes, kps)
    assert float(terms["loss_kd_img"].detach()) > 0 and float(terms["loss_kd_det"].detach()) > 0
    assert torch.allclose(terms["loss"], 10.0 * terms["loss_kd_img"] + terms["loss_kd_det"])
    terms["loss"].backward()
    for name in ("enhancer", "denoiser", "detector"):
        grads = [p.grad.abs().sum() for p in getattr(student, name).parameters() if p.grad is not None]
        assert grads and float(sum(grads)) > 0, name
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))


def test_distillation_is_zero_against_itself_and_optional():
    pytest.importorskip("mmdet", reason="the joint loss needs mmdet (prune image)")
    from shared.jmmc import JointLoss, frozen_copy
    pipe = build_models({"input_size": [64, 64]}).eval()
    terms = JointLoss(teacher=frozen_copy(pipe), w_kd_img=1.0, w_kd_det=1.0)(pipe, *_batch())
    assert float(terms["loss_kd_img"]) == 0 and float(terms["loss_kd_det"]) == 0
    # the quantize stage's call (stages/quantize/qat.py: JointLoss(**weights)): no teacher, no KD terms
    plain = JointLoss(**{"w_det": 1.0, "w_den": 0.1, "w_lle": 0.1})(pipe, *_batch())
    assert "loss_kd_det" not in plain and torch.isfinite(plain["loss"])


@pytest.mark.parametrize("part", ["enhancer", "detector"])
def test_independent_distillation_reaches_the_model(part):
    pytest.importorskip("mmdet", reason="the detector loss needs mmdet (prune image)")
    from stages.prune.finetuners import independent_loss
    student, teacher = _student_teacher()
    loss = independent_loss(part, getattr(teacher, part), 1.0)
    model = getattr(student, part)
    terms = loss(model, *_batch())
    assert float(terms["loss_kd"]) > 0
    terms["loss_kd"].backward()   # the distillation term alone
    assert float(sum(p.grad.abs().sum() for p in model.parameters() if p.grad is not None)) > 0


def test_cropped_restoration_loss_sees_matching_windows():
    """prune.finetune.crop: input and target cut at the same place, per image; the detector never cropped."""
    from stages.prune.finetuners import Cropped, DetectorLoss, independent_loss
    seen = []

    def record(model, x, clean, boxes, kps):
        seen.append((x, clean))
        return {"loss": torch.zeros(())}
    x = torch.arange(2 * 3 * 64 * 48, dtype=torch.float32).reshape(2, 3, 64, 48)
    Cropped(record, 32, seed=0)(None, x, x + 1, [], [])
    xc, cc = seen[0]
    assert xc.shape == cc.shape == (2, 3, 32, 32) and torch.equal(cc, xc + 1)
    assert all(any(torch.equal(xc[k], x[k, :, i:i + 32, j:j + 32]) for i in range(33) for j in range(17))
               for k in range(2))
    assert isinstance(independent_loss("detector", crop=32), DetectorLoss)
    assert isinstance(independent_loss("enhancer", crop=32), Cropped) and not isinstance(
        independent_loss("enhancer"), Cropped)

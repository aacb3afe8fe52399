"""The AIMET simulation measured with its exported file's int32 biases computes what the file computes
(stages/quantize/file_bias.py, issue 15's sim-vs-file gap)."""
from __future__ import annotations

import numpy as np
import torch

from shared.ort_runtime import open_session
from stages.quantize import aimet_ptq, onnx_io
from stages.quantize.file_bias import file_biases, module_path
from stages.quantize.grid import Cell


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = torch.nn.Sequential(torch.nn.Conv2d(c, c, 3, padding=1), torch.nn.ReLU())
        self.conv2 = torch.nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv2(self.conv1(x)))


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.blocks = torch.nn.ModuleList([Block(16), Block(16)])
        self.head = torch.nn.Conv2d(16, 3, 1)

    def forward(self, x):
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        return self.head(x)


def test_module_path_from_scope_names():
    assert module_path("/enhancer/encoders.0/encoders.0.0/conv1/conv1.0/Conv") == "enhancer.encoders.0.0.conv1.0"
    assert module_path("/detector/backbone/model0/conv1/Conv") == "detector.backbone.model0.conv1"
    assert module_path("/head/Conv") == "head" and module_path("Conv_3") == ""


def test_sim_with_file_biases_equals_the_file(tmp_path):
    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():     # biases large against the accumulator grid, as after BN folding
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.bias.uniform_(-0.3, 0.3)
    calib = [torch.rand(4, 3, 32, 32)]
    sim, _ = aimet_ptq.ptq(net, Cell("none", False, "W8A8", 0, "min_max"), calib, tmp_path / "work", 10)
    info = onnx_io.export_qdq(sim, "denoiser", calib[0][:1], tmp_path / "m", 13, int8_weights=True)
    path = tmp_path / info["onnx"]
    x = torch.rand(8, 3, 32, 32)
    sess = open_session(path, "exact", 1)
    out = np.concatenate([sess.run(None, {"input": x[i:i + 1].numpy()})[0] for i in range(len(x))])
    before = [p.detach().clone() for p in sim.model.parameters()]
    with torch.no_grad():
        plain = sim.model(x).numpy()
        with file_biases(sim.model, path) as n:
            matched = sim.model(x).numpy()
    assert n == {"biases": 6, "matched": 6}               # stem, 2 x 2 in the blocks, head
    step = np.diff(np.unique(out)).min()                  # the output's quantization step
    assert np.abs(matched - out).max() < 1e-3 * step      # the same int8 values: equal outputs
    assert np.abs(plain - out).max() >= step * 0.99       # float biases: some values one step apart
    assert all(torch.equal(a, b) for a, b in zip(before, sim.model.parameters()))   # restored for QAT

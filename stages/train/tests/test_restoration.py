"""Restoration training on tiny synthetic pairs: the PSNR loss goes up, AMP works, shapes hold."""
import logging

import numpy as np
import pytest
import torch

from shared.models import RestorationNet
from stages.train.amp import Amp, pick_device
from stages.train.restoration import random_crops, train_restoration


class FakeSplit:
    """Pairs where the target is a brighter copy of the input: learnable in a few steps."""
    root = "fake"

    def __init__(self, n=8, size=32):
        rng = np.random.default_rng(0)
        self.clean = rng.integers(60, 200, (n, size, size, 3)).astype(np.uint8)
        self.dark = (self.clean * 0.5).astype(np.uint8)

    def images(self, variant, limit=None):
        return (self.clean if variant == "0" else self.dark)[:limit]


CFG = {"epochs": 4, "batch_size": 4, "lr": 5e-3, "weight_decay": 0.0, "crop": None, "limit": None}


@pytest.mark.parametrize("amp", [False, True])
def test_training_raises_psnr(amp):
    torch.manual_seed(0)
    model = RestorationNet((4, 8, 8, 8))
    hist = train_restoration(model, FakeSplit(), "1", "0", CFG, Amp(amp, torch.device("cpu")), 0,
                             logging.getLogger("t"), "enh")
    assert len(hist) == 4
    assert hist[-1]["train_psnr"] > hist[0]["train_psnr"] + 0.5
    assert all(h["images_per_s"] > 0 for h in hist)


def test_random_crops_keep_pairs_aligned():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 255, (3, 40, 40, 3)).astype(np.uint8)
    xb, yb = random_crops(x.copy(), x.copy(), 16, rng)
    assert xb.shape == (3, 3, 16, 16) and xb.dtype == np.float32
    np.testing.assert_array_equal(xb, yb)
    assert 0.0 <= xb.min() and xb.max() <= 1.0


def test_amp_modes():
    cpu = torch.device("cpu")
    assert Amp(False, cpu).describe() == "fp32"
    a = Amp(True, cpu)
    assert a.describe() == "bfloat16 autocast" and a.scaler is None
    with a.autocast():
        y = torch.nn.Linear(4, 4)(torch.ones(1, 4))
    assert y.dtype == torch.bfloat16


def test_device_choice():
    assert pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert pick_device("auto").type == "cpu"
        with pytest.raises(RuntimeError, match="sees no GPU"):
            pick_device("cuda")

"""Quantize stage tests: repo root on sys.path and a tiny FP32 pipeline."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TINY = {"input_size": 32, "enhancer": {"channels": [4, 8, 8, 8], "enc_blocks": [1, 1, 1, 1], "kernel": 3},
        "denoiser": {"channels": [4, 8, 8, 8], "enc_blocks": [1, 1, 1, 1], "kernel": 3},
        "detector": {"stage_channels": [[3, 4, 4], [4, 8], [8, 8], [8, 8], [8, 8], [8, 8]], "feat_channels": 8}}


@pytest.fixture()
def tiny_pipe():
    import torch
    from shared.models import build_models
    torch.manual_seed(0)
    return build_models(TINY).eval()

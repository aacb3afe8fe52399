"""Only where the Hailo Dataflow Compiler is installed: parse -> optimize -> emulate the miniature models."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from shared.evaluation import as_fn
from stages.hailo import alls, graph, post, sdk

pytestmark = pytest.mark.needs_hailo_sdk


@pytest.mark.parametrize("role", ["enhancer", "yunet"])
def test_translate_optimize_emulate(work, hailo_cfg, role):
    info = graph.inspect(work / "train" / f"{role}.onnx", role)
    runner = sdk.translate(info, hailo_cfg["hw_arch"])
    returned = post.map_outputs(sdk.hn_dict(runner), list(dict.fromkeys(info.end_nodes.values())))
    scale = alls.input_scale(role, hailo_cfg)
    calib = np.random.default_rng(0).uniform(0, scale, (8, 64, 64, 3)).astype(np.float32)
    cfg = copy.deepcopy(hailo_cfg)
    cfg["optimization_level"] = 0
    sdk.optimize(runner, alls.generate(info, cfg, len(calib)), calib)
    x = np.random.default_rng(1).uniform(0, 1, (2, 3, 64, 64)).astype(np.float32)
    feed = 1.0 if role == "yunet" else scale          # protocol units -> compiled-model input units
    x = x * np.float32(255.0 if role == "yunet" else 1.0)
    ref = as_fn(info.path)(x)
    with sdk.emulator(runner, "fp_optimized") as emu:
        got = post.wrap_nhwc(emu, returned, info, feed)(x)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, atol=1e-2 * max(1.0, float(np.abs(r).max())))

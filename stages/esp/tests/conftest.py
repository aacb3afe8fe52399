"""esp stage tests: repo root on sys.path, a tiny dataset on disk, tiny exported models."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from shared import tiny_data  # noqa: E402
from shared.config import _read_yaml, defaults  # noqa: E402

SIZE = 32


def write_split(root: Path, split: str, n: int, rng) -> None:
    tiny_data.write_split(root, split, n, rng, SIZE)


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dataset")
    rng = np.random.default_rng(0)
    write_split(root, "test", 2, rng)
    write_split(root, "calibration", 2, rng)
    return root


@pytest.fixture(scope="session")
def train_dir(tmp_path_factory) -> Path:
    """enhancer/denoiser/yunet.onnx of tiny untrained nets at 32x32 (what the train stage exports)."""
    import torch
    from shared.models import OUTPUT_NAMES, build_models
    from shared.models.export import export_onnx
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("train")
    ch = {"channels": [4, 8, 8, 8]}
    pipe = build_models({"input_size": [SIZE, SIZE], "enhancer": ch, "denoiser": ch}).eval()
    shape = (1, 3, SIZE, SIZE)
    export_onnx(pipe.enhancer, d / "enhancer.onnx", shape, ["output"])
    export_onnx(pipe.denoiser, d / "denoiser.onnx", shape, ["output"])
    export_onnx(pipe.detector, d / "yunet.onnx", shape, list(OUTPUT_NAMES))
    return d


@pytest.fixture
def esp_cfg() -> dict:
    schema, _ = _read_yaml(REPO / "stages" / "esp" / "schema.yaml")
    c = defaults(schema)
    c["models"] = ["enhancer", "denoiser", "yunet"]
    c["calibration"] = {"algorithm": "minmax"}
    c["mixed"].update(analysis_steps=1, nsr_threshold=10.0)  # none above: mixed = int8 (re-quantization: test_quantize)
    c["threads"] = 2
    return c


@pytest.fixture
def make_ctx(tmp_path, dataset_dir, train_dir):
    def make(cfg: dict, workers: int = 1, name: str = "esp"):
        out = tmp_path / name
        out.mkdir()
        config = {"eval": {"variant": "1_noisy", "score_thr": 0.02, "nms_iou": 0.45, "iou_thr": 0.5, "limit": None,
                           "batch": 8}, "esp": cfg, "seed": 0, "calibration": {"images": 2, "source": "chain"},
                  "executor": {"kind": "local", "workers": workers, "cpus_per_cell": 1, "address": "", "retries": 2}}
        from shared.stage import StageContext   # the real one: ctx.artifact records and checks
        return StageContext("esp", cfg, config, tmp_path, out, 0, logging.getLogger("test-esp"),
                            {"dataset": dataset_dir, "train": train_dir}, {"dataset": {}, "train": {}})
    return make

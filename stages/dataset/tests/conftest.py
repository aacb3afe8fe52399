"""Shared fixtures: repo root on sys.path, the dataset section's defaults, a stage context."""
from __future__ import annotations

import copy
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from shared.config import _read_yaml, defaults  # noqa: E402


@pytest.fixture(scope="session")
def base_cfg() -> dict:
    """Defaults of stages/dataset/schema.yaml (as the config loader fills them)."""
    schema, _ = _read_yaml(REPO / "stages" / "dataset" / "schema.yaml")
    return defaults(schema)


@pytest.fixture
def cfg(base_cfg) -> dict:
    """A small, fast variant: 64x64 images, few per split, in-process."""
    c = copy.deepcopy(base_cfg)
    c.update(size=[64, 64], workers=0, preview=2)
    c["splits"] = {"train": 4, "test": 2, "calibration": 2, "val": 2}
    c["face_size"] = {"min": 12, "max": 40}
    return c


@pytest.fixture
def make_ctx(tmp_path):
    """ctx factory for calling steps.run directly (what shared.stage.main builds)."""
    def make(cfg: dict, seed: int = 0, name: str = "out"):
        out = tmp_path / name
        out.mkdir()
        return SimpleNamespace(cfg=cfg, out=out, seed=seed, log=logging.getLogger("test.dataset"))
    return make

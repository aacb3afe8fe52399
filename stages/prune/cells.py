"""The prune stage's variants as independent cells, run side by side by ``shared.executor``.

Each variant (independent, joint, sparse, EDGY) starts from its own fresh copy of the FP32
chain and reads nothing another variant writes, so they are cells: a :class:`VariantJob` holds
what one needs (the plan entry, where the train and dataset outputs are, its output folder, the
run config) and :func:`variant_cell` builds, measures and exports it in any process, returning
its metrics.  The stage adds the rows in plan order and records the files itself, so the table
is the same whether the cells ran one after another or in parallel.

The budget search is not a cell: each probe depends on the last accepted one.

Cells always run on this machine (``shared.executor.local``: ``kind: ray`` is read as local): the
Ray cluster runs the quantize image (compose.ray.yaml), which has no torch-pruning.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from shared.data import load_split, to_float
from shared.evaluation import Protocol

LOGGER = "stages.prune"


@dataclass(frozen=True)
class VariantJob:
    job: dict          # the plan entry (stages.prune.steps.plan)
    train_dir: Path
    dataset_dir: Path
    out: Path          # variants/<name>/
    config: dict       # the run config (prune section, eval protocol, device, seed)

    @property
    def name(self) -> str:
        return self.job["name"]


def variant_cell(vj: VariantJob) -> dict:
    """Build one variant from the train stage's chain, measure and export it into ``vj.out``;
    its metrics (``stages.prune.measure.measure``), with ``seconds`` (the build) in the info."""
    from stages.prune import measure, steps, variants
    cfg, config = vj.config["prune"], vj.config
    log = logging.getLogger(LOGGER)
    train, test, calib = (load_split(vj.dataset_dir, s) for s in ("train", "test", "calibration"))
    fp32 = steps.load_fp32(vj.train_dir)
    size = tuple(fp32.input_size)
    proto = Protocol.from_config(config)
    env = variants.Env(train, calib, size, cfg, config["seed"], log, steps.pick_device(config["device"]))
    probe = torch.from_numpy(to_float(test.images(proto.variant, 1)))
    torch.manual_seed(config["seed"])
    t0 = time.time()
    model, info = steps.build(vj.job, fp32, env)
    info = {**info, "seconds": round(time.time() - t0, 1), **({"edgy": vj.job["edgy"]} if "edgy" in vj.job else {})}
    return measure.measure(vj.name, model, test, proto, size, vj.out, cfg["export"]["opset"], probe, info,
                           per_model=cfg["export"]["per_model"])

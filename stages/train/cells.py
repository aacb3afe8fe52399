"""The train stage's three trainings as executor cells: enhancer, denoiser and YuNet learn from
different pairs of the same dataset and never read each other, so they run side by side
(``shared.executor``, local: spawned processes) and the stage assembles the chain from what they
hand back.

A :class:`TrainJob` names the part, the dataset, the stage's output folder (YuNet's mmdet work
dir goes there) and the run config; :func:`train_cell` builds the chain from the run seed (so each
part starts from the same initial weights as in one process), trains its part and returns
{state (that part's state dict), history, seconds}.  Every cell computes with
``executor.cpus_per_cell`` threads, so the weights do not depend on how many ran at once.  They
run on this machine (``shared.executor.local``): the Ray cluster runs the quantize image.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from shared import units

PARTS = ("detector", *units.RESTORATION)   # the longest first: it starts while the other two share a worker


@dataclass(frozen=True)
class TrainJob:
    part: str
    dataset: Path
    out: Path          # the stage's output folder (YuNet: <out>/detector_mmdet)
    config: dict       # the run config
    size: tuple


def train_cell(job: TrainJob) -> dict:
    from shared.data import load_split
    from shared.models import build_models
    from stages.train.amp import Amp, pick_device
    from stages.train.steps import model_config
    cfg, seed = job.config["train"], job.config["seed"]
    log = logging.getLogger("stages.train")
    device = pick_device(job.config["device"])
    amp = Amp(cfg["amp"], device)
    torch.manual_seed(seed)   # the chain built as the stage builds it: every part, YuNet's cell too, starts
    pipe = build_models(model_config(cfg, job.size))   # from the torch RNG state one process had
    t0 = time.time()
    if job.part == "detector":
        from stages.train.detector_mmdet import train_detector  # needs mmdet: only in the train image
        loss_w = {k: v for k, v in cfg["detector"]["loss"].items() if v is not None}  # null: YuNetLoss's default
        det_cfg = {**cfg["detector"], "loss": loss_w, "input_size": list(job.size), "amp": cfg["amp"], "seed": seed,
                   "device": device.type}
        model, history = train_detector(job.dataset, job.out / "detector_mmdet", det_cfg, log)
    else:
        from stages.train.restoration import train_restoration
        model = getattr(pipe, job.part)
        history = train_restoration(model, load_split(job.dataset, "train"), units.train_variant(job.part),
                                    units.CLEAN, cfg["restoration"], amp, seed, log, job.part)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {"state": state, "history": history, "seconds": time.time() - t0}

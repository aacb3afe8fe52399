"""The PTQ grid's cells as independent jobs, run by ``shared.executor`` here or as Ray tasks.

A :class:`CellJob` holds what one cell needs - the candidate, the unit, the grid cell, the stage's
output folder and the dataset on the shared volume, the run config.  :func:`ptq_cell` runs it in
any process: it loads the candidate, takes the run's one calibration set with the cell's seed,
builds the AIMET sim, writes the QDQ ONNX file into the output folder, measures both and returns
the results row with its test detections.  The stage adds the rows in job order and records
their files itself, so a run gives the same table on every executor.

``keep_sim`` (cells run in the stage's process only: a sim does not cross processes) returns the
AIMET sim as well; otherwise (spawned processes, Ray) the stage rebuilds the one sim it continues
from (:func:`rebuild_sim`: the same deterministic PTQ, with the cell's thread count).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from shared import executor
from shared.evaluation import as_fn
from stages.quantize import aimet_ptq, candidates
from stages.quantize.grid import Cell
from stages.quantize.methods import Runner, folder_name, make_runner

PACKAGE = "stages.quantize"   # what a Ray worker must run the same code of (shared.executor.code_digest)


@dataclass(frozen=True)
class CellJob:
    cand: candidates.Candidate
    model: str
    cell: Cell
    fp32_bytes: int
    out: Path
    dataset: Path
    config: dict
    keep_sim: bool = False


def jobs_for(cand, models_cells: dict[str, list[Cell]], fp32_bytes: dict[str, int], out: Path, dataset: Path,
             config: dict, spec: dict) -> list[CellJob]:
    """The cells of a candidate's units, to run on the executor ``spec``."""
    n = sum(len(cells) for cells in models_cells.values())
    keep = executor.in_process(spec, n)
    return [CellJob(cand, name, cell, fp32_bytes[name], out, dataset, config, keep)
            for name, cells in models_cells.items() for cell in cells]


def _unit_and_runner(job: CellJob, r: Runner | None):
    if r is None:   # in a worker: the stage's view of the data, rows returned rather than recorded
        r = make_runner(job.out, job.dataset, job.config)
    pipe = candidates.load(job.cand)
    r.upstream = {n: as_fn(candidates.unit(pipe, n)) for n in ("enhancer", "denoiser")}
    return candidates.unit(pipe, job.model), r


def ptq_cell(job: CellJob, r: Runner | None = None) -> dict:
    """One grid cell: {"row", "sim_dets", "onnx_dets", "sim" (keep_sim only)}."""
    t0 = time.time()
    unit, r = _unit_and_runner(job, r)
    q = job.config["quantize"]
    calib = r.calib(job.model, job.cell.seed, r.proto.batch)        # the cell's seed picks the subset
    dummy = r.calib(job.model, job.config["seed"], r.proto.batch)[0][:1]
    sim, _ = aimet_ptq.ptq(unit, job.cell, calib, job.out / folder_name(job.cand.name) / job.model /
                           f"{job.cell.name}_work", q["ptq"]["adaround_iterations"])
    row, sim_dets, onnx_dets = r.record(job.cand.name, job.model, job.cell.method, job.cell.bits, job.cell.seed,
                                        sim.model, sim, dummy, job.cell.name, job.fp32_bytes,
                                        {"cell": job.cell.name, "ptq_seconds": round(time.time() - t0, 1)}, add=False)
    return {"row": row, "sim_dets": sim_dets, "onnx_dets": onnx_dets, "sim": sim if job.keep_sim else None}


def rebuild_sim(job: CellJob, r: Runner):
    """The AIMET sim of a cell run elsewhere (a spawned process, a Ray worker), rebuilt here by the
    same PTQ with the same thread count."""
    with executor.cell_threads(job.config["executor"]["cpus_per_cell"]):
        unit, r = _unit_and_runner(replace(job, keep_sim=True), r)
        calib = r.calib(job.model, job.cell.seed, r.proto.batch)
        sim, _ = aimet_ptq.ptq(unit, job.cell, calib, job.out / folder_name(job.cand.name) / job.model /
                               f"{job.cell.name}_work", job.config["quantize"]["ptq"]["adaround_iterations"])
    return sim

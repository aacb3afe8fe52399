"""The report's accuracy measurements as executor cells, apart from its timings.

Every ONNX file is scored by the shared protocol; most carry their upstream stage's figures
(``measure.evaluate_artifact`` reads them), but some are measured here: files without upstream
figures, the JMMC table's files (their per-image detections are kept for the intervals) and every
timed whole system in OpenVINO.  Those measurements are independent cells (:func:`accuracy_cell`),
run side by side on the local executor (``shared.executor``; each with ``executor.cpus_per_cell``
threads, OpenVINO's included).  Latency is not measured here: the stage times every file after,
one at a time, with nothing else computing.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from shared import executor
from shared.data import load_split
from shared.evaluation import Protocol
from stages.report import openvino_rt
from stages.report.measure import evaluate_artifact, from_upstream
from stages.report.records import Artifact

LOGGER = "stages.report"


@dataclass(frozen=True)
class AccuracyJob:
    artifact: Artifact
    keep_dets: bool    # evaluated here with its per-image detections (the JMMC table)
    openvino: bool     # also scored in OpenVINO (a timed whole system)
    dataset: Path
    config: dict       # the run config (eval protocol)


def accuracy_cell(job: AccuracyJob) -> dict:
    """The artifact's metrics (``measure.evaluate_artifact``), with ``ov_ap`` for an OpenVINO job."""
    log = logging.getLogger(LOGGER)
    test, proto = load_split(job.dataset, "test"), Protocol.from_config(job.config)
    m = evaluate_artifact(job.artifact, test, proto, log, keep_dets=job.keep_dets)
    if job.openvino:
        threads = int(os.environ.get("JMMC_THREADS") or 0)   # the cell's (shared.executor.cell_threads)
        m["ov_ap"] = openvino_rt.accuracy(job.artifact.path, test, proto, threads)
    return m


def measure(arts: list[Artifact], keep: frozenset, openvino: set, test, proto: Protocol, dataset: Path, config: dict,
            log) -> dict:
    """{artifact name: metrics} for the ONNX files ``arts``: read from upstream where it can be (the
    stage's ``test`` split and ``proto``), the rest measured in cells that load the split from
    ``dataset`` themselves (``openvino``: the names also scored in OpenVINO)."""
    jobs = [AccuracyJob(a, a.name in keep, a.name in openvino, dataset, config) for a in arts]
    cells = [j for j in jobs if j.openvino or not from_upstream(j.artifact, j.keep_dets)]
    spec = executor.local(config["executor"], log)
    if cells:
        log.info("accuracy of %d file(s) measured here (%d in OpenVINO too), %d read from their stage's manifest",
                 len(cells), sum(j.openvino for j in cells), len(jobs) - len(cells))
    done = dict(zip((j.artifact.name for j in cells),
                    executor.run_cells(accuracy_cell, cells, spec, log)))
    return {j.artifact.name: done.get(j.artifact.name) or evaluate_artifact(j.artifact, test, proto, log)
            for j in jobs}

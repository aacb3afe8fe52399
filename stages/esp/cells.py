"""The esp stage's work as executor cells (``shared.executor``, local): one per candidate and model,
then one per chain measured.

:func:`model_cell` quantizes one prepared ONNX graph for ESP-DL (every configured variant, the
mixed variant's error report), measures the FP32 file (ONNX Runtime) and each distinct quantized
graph (esp-ppq's TorchExecutor) on the test split, and returns each variant's footprint.  It saves
each distinct variant's graph in esp-ppq's native format under ``<out>/.graphs/`` so that
:func:`chain_cell` can run the three quantized nets in series in another process: esp-ppq's graph
does not survive pickling, while its native file loads back to the same outputs.  The stage adds
the rows and records the files in one order, so the tables do not depend on how many cells ran at
once.  Cells always run on this machine (the Ray cluster runs the quantize image).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LOGGER = "stages.esp"


@dataclass(frozen=True)
class ModelJob:
    cand: str
    model: str
    onnx: Path             # the prepared graph (cut where configured)
    cal: np.ndarray        # its calibration inputs, scaled (shared.calibration)
    measured: bool         # False for a cut graph: its file and bytes only, no accuracy
    qdir: Path             # <out>/<cand>/<model>/: the .espdl, .info, .ppq.json, error report
    graphs: Path           # <out>/.graphs/<cand>/<model>/: native graphs for the chain cells
    dataset: Path
    config: dict           # the run config (esp section, eval protocol)


@dataclass(frozen=True)
class ChainJob:
    cand: str
    variant: str | None    # None: the FP32 chain (ONNX Runtime on the three ONNX files)
    files: tuple           # the three ONNX files or native graphs, in chain order
    outputs: tuple         # each net's output names, in chain order
    dataset: Path
    config: dict


def _split_and_protocol(dataset: Path, config: dict):
    from shared.data import load_split
    from shared.evaluation import Protocol
    return load_split(dataset, "test"), Protocol.from_config(config)


def model_cell(job: ModelJob) -> dict:
    """{"fp32": metrics or None, "variants": {variant: {footprint, size, same_as, metrics, graph}}, "seconds"};
    ``same_as`` names the variant whose graph this one is (mixed without an int16 layer is int8)."""
    import onnx
    from esp_ppq.api import export_ppq_graph
    from esp_ppq.core import TargetPlatform

    from stages.esp.calib import as_batches
    from stages.esp.evaluate import executor_fn, metrics
    from stages.esp.footprint import graph_footprint
    from stages.esp.steps import quantize_model
    t0 = time.time()
    test, proto = _split_and_protocol(job.dataset, job.config)
    fp32 = metrics(job.model, job.onnx, test, proto) if job.measured else None
    graphs = quantize_model(job.model, job.onnx, as_batches(job.cal), job.config["esp"], job.qdir,
                            logging.getLogger(LOGGER))
    names = [o.name for o in onnx.load(str(job.onnx)).graph.output]
    job.graphs.mkdir(parents=True, exist_ok=True)
    out, seen = {}, {}
    for v, g in graphs.items():
        same = seen.get(id(g))
        entry = {"footprint": graph_footprint(g, as_batches(job.cal[:1])[0]),
                 "size": (job.qdir / f"{v}.espdl").stat().st_size, "same_as": same}
        if same is None:
            seen[id(g)] = v
            entry["metrics"] = metrics(job.model, executor_fn(g, names), test, proto) if job.measured else None
            entry["graph"] = job.graphs / f"{v}.native"
            export_ppq_graph(g, TargetPlatform.NATIVE, str(entry["graph"]))
        else:
            entry.update(metrics=out[same]["metrics"], graph=out[same]["graph"])
        out[v] = entry
    return {"fp32": fp32, "variants": out, "outputs": names, "seconds": round(time.time() - t0, 1)}


def chain_cell(job: ChainJob) -> dict:
    """The chain's accuracy by the shared protocol: {"metrics", "seconds"}."""
    from stages.esp.evaluate import chain_fn, executor_fn, metrics
    t0 = time.time()
    test, proto = _split_and_protocol(job.dataset, job.config)
    if job.variant is None:
        system = chain_fn(*job.files)
    else:
        from esp_ppq.api import load_native_graph
        system = chain_fn(*(executor_fn(load_native_graph(str(p)), list(names))
                            for p, names in zip(job.files, job.outputs)))
    return {"metrics": metrics("chain", system, test, proto), "seconds": round(time.time() - t0, 1)}

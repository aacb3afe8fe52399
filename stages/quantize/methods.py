"""One quantized variant, measured twice: in the simulation (torch) and as INT8 ONNX in ONNX Runtime.

``Runner`` holds the splits, the protocol and the output folder; ``record`` evaluates a
quantized torch module, exports it, evaluates the ONNX file, computes the gap and
returns a results row.  ``chained_onnx`` runs three ONNX files in series (the
independently quantized models chained) as one callable for the protocol.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from shared.data import to_float
from stages.quantize import measure, onnx_io
from stages.quantize.candidates import input_scale, source_variant

log = logging.getLogger("stages.quantize")
GAP_WARN = 0.02


@dataclass
class Runner:
    out: Path
    test: object
    calib_split: object
    train: object
    proto: object
    opset: int
    int8_weights: bool
    rows: list = field(default_factory=list)

    def calib(self, name: str, seed: int, limit: int | None, batch: int) -> list[torch.Tensor]:
        """Calibration batches for a unit (its input variant and scale), seed-ordered subset."""
        n = len(self.calib_split)
        idx = np.random.default_rng(seed).permutation(n)[: (limit or n)]
        variant = source_variant(name, self.proto.variant)
        imgs = np.stack([self.calib_split.image(int(i), variant) for i in idx])
        x = torch.from_numpy(to_float(imgs) * np.float32(input_scale(name)))
        return [x[i:i + batch] for i in range(0, len(x), batch)]

    def record(self, cand: str, name: str, method: str, bits: str, seed: int, module, sim, dummy, stem: str,
               fp32_bytes: int | None, extra: dict | None = None, onnx_exporter=None) -> dict:
        t0 = time.time()
        sim_m = measure.evaluate(module, name, self.test, self.proto)
        path = self.out / cand / name / stem
        if onnx_exporter is not None:
            info = onnx_exporter(path)
        else:
            info = onnx_io.export_qdq(sim, name, dummy, path, self.opset, self.int8_weights)
        onnx_path = path.with_suffix(".onnx")
        onnx_m = measure.evaluate(onnx_path, name, self.test, self.proto)
        gap = measure.gap(sim_m, onnx_m)
        mg = measure.max_gap(gap)
        row = {"candidate": cand, "model": name, "method": method, "bits": bits, "seed": seed,
               "sim": sim_m, "onnx": onnx_m, "gap": gap, "max_gap": mg, "int8_bytes": info.get("weight_bytes"),
               "fp32_bytes": fp32_bytes, "onnx_file": str(onnx_path.relative_to(self.out)), "export": info,
               "seconds": round(time.time() - t0, 1), **(extra or {})}
        if mg > GAP_WARN:
            log.warning("%s/%s %s: sim vs ONNX gap %.4f (%s) - check the export", cand, name, method, mg, gap)
        log.info("%s/%s %s %s seed %d: sim %s | onnx %s", cand, name, method, bits, seed, _short(sim_m), _short(onnx_m))
        self.rows.append(row)
        return row


def _short(m: dict) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in m.items() if isinstance(v, float))


def primary(name: str, m: dict) -> float:
    """Higher is better: AP for detection units, PSNR for restoration units."""
    return m.get("ap", float("-inf")) if name in ("pipeline", "detector") else m.get("psnr", float("-inf"))


def chained_onnx(enh: Path, den: Path, det: Path):
    """fn([0,1] NCHW batch) -> detector outputs, running the three ONNX models in series."""
    from shared.evaluation import as_fn
    fe, fd, ft = as_fn(enh), as_fn(den), as_fn(det)

    def run(x):
        return ft(fd(fe(x)[0])[0] * np.float32(255.0))
    return run

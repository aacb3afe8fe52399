"""esp-ppq for ESP-DL: quantize one ONNX graph, the layerwise error report, the int16 dispatch rule.

:func:`quantize` runs ``espdl_quantize_onnx`` on a COPY of the ONNX file (esp-ppq
simplifies its input in place) and writes ``<stem>.espdl`` (the model ESP-DL loads),
``<stem>.info`` (readable dump) and ``<stem>.ppq.json`` (esp-ppq's quantization config, renamed
from its ``<stem>.json``: it is keyed by Python object ids, so it is a record of the run that
cache keys leave out, ``shared.manifest.RECORD_FILES``), with the
calibration image as the exported test value (what ``dl::Model::test()`` checks on the
board).  esp-ppq's console output goes to ``<stem>.ppq.log``.

Mixed precision (the ESP-DL tutorial's recipe, automated): quantize to int8, measure each
layer's noise:signal power ratio (NSR), send every layer above ``nsr_threshold``
(:func:`select_int16`) and the activation op fused behind it to int16 through
``setting.dispatching_table``, quantize again.  The error report holds esp-ppq's
``layerwise_error_analyse`` (only that layer quantized), ``graphwise_error_analyse``
(cumulative, at the layer's output) and the marginal NSR: a layer's graphwise NSR minus the
largest graphwise NSR of its inputs, i.e. the error the layer itself adds.  Which one drives
the rule is ``esp.mixed.measure`` (default marginal: esp-ppq 1.3.12's layerwise analysis
returned 0.0 for every layer of our graphs, see stages/esp/README.md).
"""
from __future__ import annotations

import contextlib
import csv
import shutil
import tempfile
import time
from pathlib import Path

import torch

FIELDS = ["layer", "type", "layerwise_nsr", "graphwise_nsr", "marginal_nsr", "bits"]
FOLLOWERS = {"Relu", "Clip", "Sigmoid", "LeakyRelu", "PRelu", "HardSwish", "HardSigmoid", "Swish", "Tanh"}


def make_setting(bits: int, algorithm: str, int16_ops: list[str], target: str):
    from esp_ppq.api import get_target_platform
    from esp_ppq.api.setting import QuantizationSettingFactory
    s = QuantizationSettingFactory.espdl_setting(num_of_bits=bits)
    if bits == 8:
        s.quantize_activation_setting.calib_algorithm = algorithm
    for op in int16_ops:
        s.dispatching_table.append(op, get_target_platform(target, 16))
    return s


def quantize(onnx_path: Path, out_dir: Path, stem: str, calib: list[torch.Tensor], bits: int, setting,
             target: str, log) -> tuple[object, float]:
    """Quantize and export; returns (the quantized esp-ppq BaseGraph, seconds)."""
    from esp_ppq.api import espdl_quantize_onnx
    out_dir.mkdir(parents=True, exist_ok=True)
    shape = list(calib[0].shape)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="jmmc-esp-") as tmp:
        work = Path(tmp) / onnx_path.name
        shutil.copy(onnx_path, work)
        with open(out_dir / f"{stem}.ppq.log", "w") as fh, contextlib.redirect_stdout(fh):
            graph = espdl_quantize_onnx(
                onnx_import_file=str(work), espdl_export_file=str(out_dir / f"{stem}.espdl"),
                calib_dataloader=calib, calib_steps=len(calib), input_shape=shape, inputs=[calib[0]],
                target=target, num_of_bits=bits, setting=setting, device="cpu", error_report=False,
                export_test_values=True)
    dt = time.time() - t0
    for ext in ("espdl", "info", "json"):
        if not (out_dir / f"{stem}.{ext}").exists():
            raise RuntimeError(f"esp-ppq did not write {out_dir / f'{stem}.{ext}'}; see {out_dir / f'{stem}.ppq.log'}")
    (out_dir / f"{stem}.json").replace(out_dir / f"{stem}.ppq.json")
    log.info("quantized %s -> %s.espdl (%d bits, %d B) in %.1f s", onnx_path.name, stem, bits,
             (out_dir / f"{stem}.espdl").stat().st_size, dt)
    return graph, dt


def error_report(graph, calib: list[torch.Tensor], steps: int, out_csv: Path, layerwise: bool = True) -> list[dict]:
    """Per computing layer: layerwise NSR (that layer alone quantized; NaN unless ``layerwise``: it runs
    two forward passes per layer and batch), graphwise NSR (cumulative), marginal NSR, bits."""
    from esp_ppq.quantization.analyse import graphwise_error_analyse
    from esp_ppq.quantization.analyse.layerwise import layerwise_error_analyse
    with contextlib.redirect_stdout(open(out_csv.with_suffix(".log"), "w")):
        layer = (layerwise_error_analyse(graph, calib, running_device="cpu", method="snr", steps=steps,
                                         verbose=False) or {}) if layerwise else {}
        cumulative = graphwise_error_analyse(graph, running_device="cpu", dataloader=calib, method="snr",
                                             steps=steps, verbose=False) or {}
    rows = []
    for name in cumulative:
        op = graph.operations[name]
        ups = [u.name for u in graph.get_upstream_operations(op)]
        before = max([_upstream_nsr(graph, u, cumulative) for u in ups] or [0.0])
        g = float(cumulative[name])
        rows.append({"layer": name, "type": op.type, "layerwise_nsr": float(layer.get(name, float("nan"))),
                     "graphwise_nsr": g, "marginal_nsr": max(0.0, g - before), "bits": op_bits(op)})
    rows.sort(key=lambda r: -r["marginal_nsr"])
    write_report(rows, out_csv)
    return rows


def _upstream_nsr(graph, name: str, cumulative: dict, depth: int = 0) -> float:
    """Graphwise NSR at ``name``, or (for an op the analysis skips) at the nearest measured upstream op."""
    if name in cumulative or depth > 8:
        return float(cumulative.get(name, 0.0))
    ups = graph.get_upstream_operations(graph.operations[name])
    return max([_upstream_nsr(graph, u.name, cumulative, depth + 1) for u in ups] or [0.0])


def write_report(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)


def read_report(path: Path) -> list[dict]:
    """Parse an error report CSV back (floats and ints restored); a bad file is named in the error."""
    rows = []
    with open(path, newline="") as fh:
        for i, r in enumerate(csv.DictReader(fh), start=2):
            try:
                rows.append({"layer": r["layer"], "type": r["type"], "layerwise_nsr": float(r["layerwise_nsr"]),
                             "graphwise_nsr": float(r["graphwise_nsr"]), "marginal_nsr": float(r["marginal_nsr"]),
                             "bits": int(r["bits"])})
            except (KeyError, ValueError, TypeError) as e:
                raise ValueError(f"{path}:{i}: bad error-report row ({e})") from None
    return rows


def select_int16(rows: list[dict], threshold: float, max_layers: int | None = None,
                 measure: str = "marginal") -> list[str]:
    """Layers whose ``<measure>_nsr`` exceeds ``threshold``, noisiest first (at most ``max_layers``)."""
    key = f"{measure}_nsr"
    picked = [r["layer"] for r in sorted(rows, key=lambda r: -r[key]) if r[key] > threshold]
    return picked if max_layers is None else picked[:max_layers]


def with_followers(graph, ops: list[str]) -> list[str]:
    """Add the activation op right behind each chosen layer (ESP-DL fuses it: same precision)."""
    out = list(ops)
    for name in ops:
        op = graph.operations.get(name)
        if op is None:
            continue
        for nxt in graph.get_downstream_operations(op):
            if nxt.type in FOLLOWERS and nxt.name not in out:
                out.append(nxt.name)
    return out


def op_bits(op) -> int:
    """Bit width of an op's output as dispatched (32 for an op left in float)."""
    cfgs = getattr(getattr(op, "config", None), "output_quantization_config", None)
    if not cfgs:
        return 32
    c = cfgs[0]
    while getattr(c, "dominated_by", c) is not c:
        c = c.dominated_by
    return int(c.num_of_bits) if c.state.name not in ("FP32", "SOI") else 32

"""Accuracy of the quantized graphs (esp-ppq TorchExecutor: ESP-DL's integer arithmetic simulated)
next to FP32 (ONNX Runtime on the same ONNX files), by the shared protocol (shared/evaluation.py).

enhancer   PSNR / SSIM of enhancer(_1) vs _0
denoiser   PSNR / SSIM of denoiser(_0_noisy) vs _0
yunet      AP@0.5 / NME / missed on eval.variant, raw 0..255 input
pipeline   AP@0.5 / NME / missed of the single pipeline graph
chain      AP@0.5 / NME / missed of enhancer -> denoiser -> 255 x -> yunet, each graph quantized alone
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from shared import units
from shared.evaluation import as_fn, evaluate_detection, evaluate_restoration

COLUMNS = ["candidate", "model", "variant", "metric", "value", "fp32", "delta"]


def executor_fn(graph, output_names: list[str]) -> Callable[[np.ndarray], list[np.ndarray]]:
    """fn(float32 NCHW) -> outputs, one image at a time through esp-ppq's TorchExecutor (quantized)."""
    from esp_ppq.executor import TorchExecutor
    ex = TorchExecutor(graph=graph, device="cpu")

    def run(x: np.ndarray) -> list[np.ndarray]:
        outs = [ex.forward(inputs=torch.from_numpy(np.ascontiguousarray(x[i:i + 1])), output_names=output_names)
                for i in range(len(x))]
        return [np.concatenate([o[k].detach().cpu().float().numpy() for o in outs]) for k in range(len(output_names))]
    return run


def chain_fn(enhancer, denoiser, yunet) -> Callable[[np.ndarray], list[np.ndarray]]:
    return units.chain(as_fn(enhancer), as_fn(denoiser), as_fn(yunet))[0]


def metrics(model: str, system, test, proto) -> dict:
    if model in units.RESTORATION:
        m = evaluate_restoration(system, test, units.train_variant(model), units.CLEAN, proto.limit, proto.batch)
        return {"psnr": m["psnr"], "ssim": m["ssim"]}
    m = evaluate_detection(system, test, proto, input_range=units.input_range(model))
    return {"ap": m["ap"], "nme": m["nme"], "missed": m["missed"]}


def rows_for(candidate: str, model: str, variant: str, got: dict, fp32: dict) -> list[dict]:
    return [{"candidate": candidate, "model": model, "variant": variant, "metric": k, "value": float(v),
             "fp32": float(fp32[k]), "delta": float(v) - float(fp32[k])} for k, v in got.items()]


def write_tables(rows: list[dict], out: Path) -> None:
    with open(out / "accuracy.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    lines = ["| candidate | model | variant | metric | simulated | FP32 (ORT) | delta |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['candidate']} | {r['model']} | {r['variant']} | {r['metric']} | {r['value']:.4f} | "
              f"{r['fp32']:.4f} | {r['delta']:+.4f} |" for r in rows]
    (out / "accuracy.md").write_text("\n".join(lines) + "\n")

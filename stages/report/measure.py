"""Accuracy of every artifact by the shared protocol (shared/evaluation.py), on the same test images.

* detector (``yunet*``): the bare detector on the degraded images, raw 0..255 input;
* pipeline: the single-graph chain, [0, 1] input; detection metrics;
* enhancer: PSNR/SSIM of ``1`` -> ``0``; denoiser: ``0_noisy`` -> ``0``; other restoration
  nets: the eval variant -> ``0``;
* chain (a group with enhancer, denoiser and detector files): the three ONNX Runtime
  sessions composed, detector(255 * denoiser(enhancer(x))), detection on the eval variant
  and PSNR/SSIM of the restored image against the clean one.

Metrics the upstream stage computed for the same file with the same ``eval`` section are
taken as they are (``source`` names the stage); everything else is measured here.
"""
from __future__ import annotations

import time

import numpy as np

from shared.evaluation import Protocol, as_fn, evaluate_detection, evaluate_restoration
from stages.report.discover import Artifact

DET_KEYS = ("ap", "nme", "top_box_iou", "missed", "n_gt", "n_images")
RES_KEYS = ("psnr", "ssim", "psnr_input", "ssim_input")
RESTORATION_SRC = {"enhancer": "1", "denoiser": "0_noisy"}


def _keep(m: dict, keys) -> dict:
    return {k: m[k] for k in keys if k in m}


def has_metrics(m: dict | None, role: str) -> bool:
    if not m:
        return False
    need = "psnr" if role in ("enhancer", "denoiser", "restoration") else "ap"
    return need in m


def evaluate_artifact(a: Artifact, test, proto: Protocol, log=None) -> dict:
    """Metrics of one ONNX file (see the module docstring), plus ``source`` and ``eval_s``."""
    if has_metrics(a.upstream, a.role):
        return {**_keep(a.upstream, DET_KEYS + RES_KEYS), "source": f"{a.stage} manifest"}
    t0 = time.time()
    if a.role in ("detector", "pipeline"):
        m = _keep(evaluate_detection(a.path, test, proto, input_range=a.input_range), DET_KEYS)
    elif a.role in ("enhancer", "denoiser", "restoration"):
        src = RESTORATION_SRC.get(a.role, proto.variant)
        m = _keep(evaluate_restoration(a.path, test, src, "0", proto.limit, proto.batch), RES_KEYS)
        m["src"] = src
    else:
        return {"source": "not evaluated (unknown role)"}
    m.update(source="measured here", eval_s=round(time.time() - t0, 2))
    if log:
        log.info("evaluated %s (%s) in %.1f s", a.name, a.role, m["eval_s"])
    return m


def chain_functions(group: dict[str, Artifact]):
    """(restore(x) -> [0,1] image, system(x) -> 12 YuNet outputs) over three ORT sessions."""
    enh, den, det = (as_fn(group[r].path) for r in ("enhancer", "denoiser", "detector"))

    def restore(x):
        return den(enh(x)[0])[0]

    def system(x):
        return det(restore(x) * np.float32(255.0))
    return restore, system


def evaluate_chain(group: dict[str, Artifact], test, proto: Protocol, log=None) -> dict:
    t0 = time.time()
    restore, _ = chain_functions(group)
    det = as_fn(group["detector"].path)
    restored = []          # the detection pass keeps each restored batch for the PSNR/SSIM pass

    def system(x):
        restored.append(restore(x))
        return det(restored[-1] * np.float32(255.0))

    m = _keep(evaluate_detection(system, test, proto), DET_KEYS)
    replay = iter(restored)

    def replayed(x):
        r = next(replay)
        if r.shape != x.shape:
            raise RuntimeError(f"chain replay out of step: {r.shape} vs {x.shape}")
        return [r]
    m.update(_keep(evaluate_restoration(replayed, test, proto.variant, "0", proto.limit, proto.batch), RES_KEYS))
    m.update(src=proto.variant, source="measured here", eval_s=round(time.time() - t0, 2))
    if log:
        log.info("evaluated chain %s in %.1f s: AP %.3f", next(iter(group.values())).group, m["eval_s"], m["ap"])
    return m


def restored_images(group: dict[str, Artifact], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(enhanced, denoised) float NCHW for the strip."""
    enh, den = (as_fn(group[r].path) for r in ("enhancer", "denoiser"))
    e = enh(x)[0]
    return e, den(e)[0]


def detections(system_fn, test, proto: Protocol, n: int, input_range: float = 1.0):
    from shared.evaluation import detect
    return detect(system_fn, test, Protocol(**{**proto.__dict__, "limit": n}), input_range=input_range)

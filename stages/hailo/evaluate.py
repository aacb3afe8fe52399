"""Accuracy of one chain's models by the shared protocol (shared/evaluation.py), for any backend.

A backend is a dict {role: fn(NCHW batch) -> list of outputs}: FP32 ONNX Runtime, the DFC
emulator's FP-optimized or quantized context.  Per model as the train stage measures it
(enhancer PSNR/SSIM on ``1`` vs ``0``, denoiser on ``0_noisy`` vs ``0``, YuNet AP on the
protocol's variant with raw 0..255 input) and chained (enhancer -> denoiser -> YuNet on the
protocol's variant; restoration of ``1_noisy`` vs ``0``).
"""
from __future__ import annotations

import dataclasses

from shared import units
from shared.data import Split
from shared.evaluation import Protocol, as_fn, evaluate_detection, evaluate_restoration
from stages.hailo import post

HEADLINE = {"enhancer": "psnr", "denoiser": "psnr", "yunet": "ap"}


def onnx_backend(group: dict) -> dict:
    return {role: as_fn(info.path) for role, info in group.items()}


def evaluate(fns: dict, test: Split, proto: Protocol) -> dict:
    out = {}
    for n in units.RESTORATION:
        if n in fns:
            out[n] = evaluate_restoration(fns[n], test, units.train_variant(n), units.CLEAN, proto.limit, proto.batch)
    if "yunet" in fns:
        out["yunet"] = evaluate_detection(fns["yunet"], test, proto, input_range=units.input_range("yunet"))
    if all(r in fns for r in ("enhancer", "denoiser", "yunet")):
        detect, restore = post.chain(fns["enhancer"], fns["denoiser"], fns["yunet"])
        out["chain"] = {"detection": evaluate_detection(detect, test, proto),
                        "restoration": evaluate_restoration(restore, test, proto.variant, units.CLEAN, proto.limit,
                                                            proto.batch)}
    return out


def headline(result: dict) -> dict:
    """The one figure per model (PSNR dB / AP@0.5) and the chain's AP and PSNR."""
    out = {role: result[role][key] for role, key in HEADLINE.items() if role in result}
    if "chain" in result:
        out["chain_ap"] = result["chain"]["detection"]["ap"]
        out["chain_psnr"] = result["chain"]["restoration"]["psnr"]
    return out


def deltas(ref: dict, other: dict) -> dict:
    """other - ref for every headline figure both have."""
    return {k: other[k] - ref[k] for k in ref if k in other}


def limited(proto: Protocol, limit: int | None) -> Protocol:
    return proto if limit is None else dataclasses.replace(proto, limit=limit)

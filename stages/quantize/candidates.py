"""FP32 candidates from upstream stages and the unit that gets quantized.

A candidate is ``{stage, kind}`` from ``quantize.candidates`` (e.g. ``{stage: train,
kind: fp32}``; later ``{stage: prune, kind: ...}``): its output dir must hold
``models.json`` (``build_models`` config) and ``enhancer.pt``/``denoiser.pt``/
``detector.pt`` state dicts (a ``<kind>/`` subfolder is used when it exists, so the
prune stage can ship several variants).  ``unit(pipe, name)`` gives the module to
quantize for ``enhancer|denoiser|detector|pipeline`` with its input scale and a
calibration tensor maker.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from shared.models import build_models

PARTS = ("enhancer", "denoiser", "detector")


class CandidateError(ValueError):
    pass


@dataclass
class Candidate:
    stage: str
    kind: str
    root: Path

    @property
    def name(self) -> str:
        return f"{self.stage}-{self.kind}"


def resolve(ctx, entries) -> list[Candidate]:
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or set(e) - {"stage", "kind"} or "stage" not in e:
            raise CandidateError(f"quantize.candidates[{i}]: must be a mapping {{stage, kind}}, got {e!r}")
        stage, kind = e["stage"], e.get("kind", "fp32")
        root = ctx.input(stage)  # MissingInput when the stage is not a declared dependency
        if ctx.input_manifests.get(stage, {}).get("skipped"):
            ctx.log.warning("candidate %s: upstream stage skipped, ignored", stage)
            continue
        sub = root / kind
        out.append(Candidate(stage, kind, sub if (sub / "models.json").exists() else root))
    return out


def load(cand: Candidate) -> torch.nn.Module:
    """The FP32 Pipeline of a candidate (CPU, eval)."""
    cfg_path = cand.root / "models.json"
    if not cfg_path.exists():
        raise CandidateError(f"{cfg_path}: missing (candidate {cand.name} has no build_models config)")
    try:
        pipe = build_models(json.loads(cfg_path.read_text()))
    except (json.JSONDecodeError, KeyError, ValueError) as e:
        raise CandidateError(f"{cfg_path}: cannot build models ({e})") from None
    for part in PARTS:
        p = cand.root / f"{part}.pt"
        if not p.exists():
            raise CandidateError(f"{p}: missing state dict for {part}")
        getattr(pipe, part).load_state_dict(torch.load(p, map_location="cpu", weights_only=True))
    return pipe.eval()


def unit(pipe, name: str) -> torch.nn.Module:
    return pipe if name == "pipeline" else getattr(pipe, name)


def input_scale(name: str) -> float:
    """The bare detector takes raw 0..255 pixels; everything else [0, 1] images."""
    return 255.0 if name == "detector" else 1.0


def source_variant(name: str, proto_variant: str) -> str:
    """Which degraded images a unit sees: enhancer _1, denoiser _0_noisy, else the eval variant."""
    return {"enhancer": "1", "denoiser": "0_noisy"}.get(name, proto_variant)

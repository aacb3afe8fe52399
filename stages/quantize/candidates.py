"""FP32 candidates from upstream stages and the unit that gets quantized.

A candidate is ``{stage, kind}`` from ``quantize.candidates``; each names a model bundle
(``shared/models/bundle.py``: ``bundle.json`` + ``enhancer.pt``/``denoiser.pt``/``detector.pt``):

  ``{stage: train, kind: fp32}``          the stage's own bundle (``<train out>/``)
  ``{stage: prune, kind: <variant>}``     ``<prune out>/variants/<variant>/`` (the names of
                                          stages/prune/steps.py ``plan()``, e.g. joint_l2_r50)

(``<out>/<kind>/`` is also accepted.)  The stage must be a dependency of quantize in
stages/pipeline.yaml.  Pruned bundles load at their pruned widths.  ``unit(pipe, name)``
gives the module to quantize for ``enhancer|denoiser|detector|pipeline``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from shared.errors import ExpectedError
from shared.models.bundle import PARTS, BundleError, is_bundle, load_bundle


class CandidateError(ExpectedError, ValueError):
    pass


ROLES = ("jmmc", "independent")
KEYS = {"stage", "kind", "role", "models"}


@dataclass
class Candidate:
    stage: str
    kind: str
    root: Path
    role: str | None = None              # jmmc | independent: what the report's JMMC table compares
    models: tuple[str, ...] | None = None  # units quantized for this candidate (None: quantize.models)

    @property
    def name(self) -> str:
        return f"{self.stage}-{self.kind}"


def places(root: Path, kind: str) -> list[Path]:
    """Where the bundle of ``kind`` may lie in a stage's output dir, in order."""
    return ([root] if kind == "fp32" else []) + [root / "variants" / kind, root / kind]


def available(root: Path) -> list[str]:
    """The kinds a stage's output dir offers (``fp32`` for its own bundle, then its variants)."""
    kinds = ["fp32"] if is_bundle(root) else []
    for sub in (root / "variants", root):
        if sub.is_dir():
            kinds += sorted(d.name for d in sub.iterdir() if d.is_dir() and is_bundle(d) and d.name not in kinds)
    return kinds


def resolve(ctx, entries) -> list[Candidate]:
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or set(e) - KEYS or "stage" not in e:
            raise CandidateError(f"quantize.candidates[{i}]: must be a mapping {{stage, kind, role, models}}, "
                                 f"got {e!r}")
        if e.get("role") not in (None, *ROLES):
            raise CandidateError(f"quantize.candidates[{i}].role: {e['role']!r} is not one of {list(ROLES)}")
        models = e.get("models")
        if models is not None and (not isinstance(models, list) or not models):
            raise CandidateError(f"quantize.candidates[{i}].models: a non-empty list, got {models!r}")
        stage, kind = e["stage"], str(e.get("kind", "fp32"))
        root = Path(ctx.input(stage))  # MissingInput when the stage is not a declared dependency
        if ctx.input_manifests.get(stage, {}).get("skipped"):
            ctx.log.warning("candidate %s: upstream stage skipped, ignored", stage)
            continue
        if kind.startswith("@"):  # an alias the upstream stage resolved, e.g. prune's @budget
            aliases = (ctx.input_manifests.get(stage, {}).get("metrics") or {}).get("aliases") or {}
            if kind[1:] not in aliases:
                raise CandidateError(f"quantize.candidates[{i}] {{stage: {stage}, kind: {kind}}}: {stage} "
                                     f"defines no alias {kind[1:]!r} (it has: {', '.join(aliases) or 'none'})")
            kind = str(aliases[kind[1:]])
        found = next((p for p in places(root, kind) if is_bundle(p)), None)
        if found is None:
            have = available(root)
            raise CandidateError(
                f"quantize.candidates[{i}] {{stage: {stage}, kind: {kind}}}: no model bundle at "
                f"{' or '.join(str(p) for p in places(root, kind))}; {stage} offers: "
                f"{', '.join(have) if have else 'none (no bundle.json under ' + str(root) + ')'}")
        out.append(Candidate(stage, kind, found, e.get("role"), tuple(models) if models else None))
    return out


def load(cand: Candidate) -> torch.nn.Module:
    """The FP32 Pipeline of a candidate (CPU, eval), at the widths its bundle records."""
    try:
        return load_bundle(cand.root)[0]
    except BundleError as e:
        raise CandidateError(f"candidate {cand.name}: {e}") from None


def unit(pipe, name: str) -> torch.nn.Module:
    return pipe if name == "pipeline" else getattr(pipe, name)

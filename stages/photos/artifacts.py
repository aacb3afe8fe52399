"""Which whole-system ONNX files to run on the photos, read from the upstream stages' artifact records.

Kept short: the train stage's FP32 pipeline; each prune variant's pipeline; and per quantize
candidate the INT8 pipeline the quantize stage picked as its best on the val split
(``int8_vs_fp32.<candidate>.int8_file``).  All are ``manifest["artifacts"]`` records
(shared/artifacts.py) with role ``pipeline`` ([0, 1] BGR image in, YuNet's 12 outputs out; the
input is an image).  The photos stage chooses nothing on its own numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Artifact:
    name: str        # "<stage>/<path relative to the stage dir>"
    path: Path
    kind: str        # fp32 | pruned | quantized
    label: str       # short name for the figure
    precision: str   # the record's: fp32, int8, ...


def pipelines(stage: str, stage_dir: Path, manifest: dict) -> dict[str, dict]:
    """file -> record, for the stage's ONNX pipeline records whose file is there."""
    return {r["file"]: r for r in manifest.get("artifacts") or []
            if r["role"] == "pipeline" and r["format"] == "onnx" and (stage_dir / r["file"]).is_file()}


def _art(stage, stage_dir, rec, kind, label) -> Artifact:
    return Artifact(f"{stage}/{rec['file']}", stage_dir / rec["file"], kind, label, rec["precision"])


def train_pipeline(stage_dir: Path, manifest: dict) -> list[Artifact]:
    return [_art("train", stage_dir, r, "fp32", "FP32 (train)") for r in pipelines("train", stage_dir, manifest).values()]


def prune_pipelines(stage_dir: Path, manifest: dict) -> list[Artifact]:
    return [_art("prune", stage_dir, r, "pruned", f"pruned {Path(f).parent.name}")
            for f, r in pipelines("prune", stage_dir, manifest).items()]


def quantize_best(stage_dir: Path, manifest: dict) -> list[Artifact]:
    recs = pipelines("quantize", stage_dir, manifest)
    picks = {c: v["int8_file"] for c, v in ((manifest.get("metrics") or {}).get("int8_vs_fp32") or {}).items()
             if isinstance(v, dict) and v.get("int8_file") in recs}
    return [_art("quantize", stage_dir, recs[f], "quantized",
                 f"W8A8 {Path(f).stem}" + (f" ({cand})" if len(picks) > 1 else "")) for cand, f in picks.items()]


PICKS = {"train": train_pipeline, "prune": prune_pipelines, "quantize": quantize_best}
WHAT = {"train": "no ONNX pipeline record", "prune": "no ONNX pipeline record",
        "quantize": "no record of its best INT8 pipeline (int8_vs_fp32.<candidate>.int8_file)"}


def select(inputs: dict[str, Path], manifests: dict[str, dict], cfg: dict) -> tuple[list[Artifact], dict]:
    """(artifacts in run order, {stage: why it gave none}) from the declared upstream stages."""
    arts, none = [], {}
    for stage, pick in PICKS.items():
        if stage not in inputs:
            continue
        if stage != "train" and not cfg["artifacts"][stage]:
            none[stage] = f"photos.artifacts.{stage}: false"
            continue
        m = manifests.get(stage) or {}
        if m.get("skipped"):
            none[stage] = f"skipped: {m['skipped']}"
            continue
        found = pick(inputs[stage], m)
        arts += found
        if not found:
            none[stage] = f"its manifest has {WHAT[stage]}"
    return arts, none

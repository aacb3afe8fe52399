"""Which whole-system ONNX files to run on the photos, read from the upstream stages' own records.

Kept short: the FP32 ``train/pipeline.onnx``; each prune variant's ``pipeline.onnx`` (the prune
manifest's ``metrics.files`` entries, the ``{"file": ..., "eval": ...}`` convention the report reads,
see ``stages/report/discover.py``); and per quantize candidate the INT8 pipeline the quantize stage
picked as its best (``quantize_best``).  The photos stage chooses nothing on its own numbers.
Only pipelines ([0, 1] BGR image in, YuNet's 12 outputs out) are run: the input is an image.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Artifact:
    name: str        # "<stage>/<path relative to the stage dir>"
    path: Path
    kind: str        # fp32 | pruned | quantized
    label: str       # short name for the figure


def _walk(tree):
    stack = [tree]
    while stack:
        m = stack.pop()
        if isinstance(m, dict):
            yield m
            stack.extend(reversed(list(m.values())))
        elif isinstance(m, list):
            stack.extend(reversed(m))


def file_entries(tree) -> list[dict]:
    """Every dict naming an ONNX file in a metrics tree, as ``file`` (prune, esp, hailo) or
    ``onnx_file`` (quantize result rows); first occurrence of each file, in tree order."""
    seen, out = set(), []
    for m in _walk(tree):
        f = m.get("file") if isinstance(m.get("file"), str) else m.get("onnx_file")
        if isinstance(f, str) and f.endswith(".onnx") and f not in seen:
            seen.add(f)
            out.append(m)
    return out


def _is_pipeline(rel: str, entry: dict) -> bool:
    role = entry.get("role") or entry.get("model")
    if role:
        return role == "pipeline"
    return Path(rel).stem.startswith("pipeline") or Path(rel).parent.name == "pipeline"


def _stage_metrics(stage_dir: Path, manifest: dict) -> dict:
    tree = {"manifest": manifest.get("metrics") or {}}
    p = stage_dir / "metrics.json"
    if p.exists():
        try:
            tree["metrics.json"] = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise RuntimeError(f"{p}:{e.lineno}: corrupt metrics ({e.msg})") from None
    return tree


def prune_pipelines(stage_dir: Path, manifest: dict) -> list[Artifact]:
    out = []
    for e in file_entries((manifest.get("metrics") or {}).get("files", [])) or file_entries(
            manifest.get("metrics") or {}):
        rel = e.get("file") or e.get("onnx_file")
        if _is_pipeline(rel, e) and (stage_dir / rel).is_file():
            variant = Path(rel).parent.name
            out.append(Artifact(f"prune/{rel}", stage_dir / rel, "pruned", f"pruned {variant}"))
    return out


def quantize_best(stage_dir: Path, manifest: dict) -> list[Artifact]:
    """The quantize stage's own best INT8 pipeline per candidate: ``int8_vs_fp32.<candidate>.int8_file``
    (chosen there on the val split among every W8A8 pipeline row), else the pipeline its benchmark
    times (``benchmark.<candidate>.int8_bytes``, the best W8A8 PTQ cell), matched to the row's
    ``onnx_file`` in ``quantize/metrics.json``."""
    tree = _stage_metrics(stage_dir, manifest)
    full = tree.get("metrics.json", {})
    rows = [r for r in file_entries(full.get("rows", [])) if "onnx_file" in r]

    def section(key):
        return tree["manifest"].get(key) or full.get(key) or {}
    picks = {c: v["int8_file"] for c, v in section("int8_vs_fp32").items()
             if isinstance(v, dict) and isinstance(v.get("int8_file"), str)}
    for cand, b in section("benchmark").items():
        if cand in picks or not isinstance(b, dict) or not isinstance(b.get("int8_bytes"), dict):
            continue
        row = next((r for r in rows if r.get("candidate") == cand and r.get("model") == "pipeline"
                    and r.get("export") == b["int8_bytes"]), None)
        pick = b["int8_bytes"].get("onnx")
        rel = row["onnx_file"] if row else (f"{cand}/pipeline/{pick}" if pick else None)
        if rel:
            picks[cand] = rel
    out = []
    for cand, rel in picks.items():
        if rel.endswith(".onnx") and (stage_dir / rel).is_file():
            out.append(Artifact(f"quantize/{rel}", stage_dir / rel, "quantized",
                                f"W8A8 {Path(rel).stem}" + (f" ({cand})" if len(picks) > 1 else "")))
    return out


def select(inputs: dict[str, Path], manifests: dict[str, dict], cfg: dict) -> tuple[list[Artifact], dict]:
    """(artifacts in run order, {stage: why it gave none}) from the declared upstream stages."""
    arts, none = [], {}
    train = inputs["train"] / "pipeline.onnx"
    if train.is_file():
        arts.append(Artifact("train/pipeline.onnx", train, "fp32", "FP32 (train)"))
    else:
        none["train"] = f"no {train.name} in the train stage's outputs"
    for stage, pick in (("prune", prune_pipelines), ("quantize", quantize_best)):
        if stage not in inputs:
            continue
        if not cfg["artifacts"][stage]:
            none[stage] = f"photos.artifacts.{stage}: false"
            continue
        m = manifests.get(stage) or {}
        if m.get("skipped"):
            none[stage] = f"skipped: {m['skipped']}"
            continue
        found = pick(inputs[stage], m)
        arts += found
        if not found:
            none[stage] = "its manifest lists no pipeline ONNX file"
    return arts, none

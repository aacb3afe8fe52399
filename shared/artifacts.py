"""Typed artifact records: what a stage says about each model file it wrote (MMDeploy's deploy.json).

A stage calls ``ctx.artifact(path, role, precision, chain=..., metrics=..., cost=...)`` for every
model file it produces and ``ctx.chain_metrics(chain, metrics)`` for a whole enhancer -> denoiser
-> detector system it measured; ``shared.stage.main`` validates them (:func:`check_manifest`) and
writes them into the manifest:

    manifest["artifacts"] = [{"file": "pruned/50/enhancer.onnx", "role": "enhancer",
                              "precision": "fp32", "format": "onnx", "chain": "pruned/50",
                              "label": null, "metrics": {...} | null, "cost": {...} | null}, ...]
    manifest["chains"] = {"pruned/50": {"ap": ..., "nme": ..., "psnr": ...}, ...}

* ``role``: one of :data:`ROLES`: the three nets of ``shared.units``, the whole ``pipeline`` in one
  file, or ``chain``: several files run one after the other as one system by a runtime the report
  cannot open (the ESP-DL models of a candidate on the simulator); its ``file`` is their folder;
* ``precision``: ``fp32``, ``fp16`` or integer types joined by ``+`` (``int8``, ``int8+int16``);
  for a QDQ ONNX file the writer asks :func:`onnx_precision` (the zero points' types);
* ``chain``: the system the file belongs to, a folder relative to the stage dir (``.`` for the
  stage dir itself); files of one chain with the three nets' roles form that chain;
* ``metrics``: what the stage measured for this file with the run's ``eval`` protocol (AP, NME, PSNR,
  SSIM), or null; the report reuses them only when the stage's ``eval`` section equals its own;
* ``cost``: params / macs / bytes / latency_ms for files the report cannot open (a HEF, an ESP-DL
  model), or null.

The report reads these records and nothing else about the files (no name or graph guessing).
"""
from __future__ import annotations

from numbers import Number
import re
from pathlib import Path

ROLES = ("enhancer", "denoiser", "detector", "pipeline", "chain")
FORMATS = {".onnx": "onnx", ".hef": "hef", ".har": "har", ".espdl": "espdl"}
METRIC_KEYS = ("ap", "nme", "psnr", "ssim")
COST_KEYS = ("params", "macs", "bytes", "weight_bytes", "latency_ms")
_PRECISION = re.compile(r"^(fp32|fp16|bf16|u?int(4|8|16|32))(\+u?int(4|8|16|32))*$")


class ArtifactError(ValueError):
    """A record that breaks the schema (a bug in the stage that wrote it)."""


def make_record(out: Path, path, role: str, precision: str, chain: str | None = None,
                metrics: dict | None = None, cost: dict | None = None, label: str | None = None) -> dict:
    """The record of ``path`` (absolute, under ``out``, or relative to it), checked."""
    out = Path(out)
    p = Path(path)
    rel = p.relative_to(out) if p.is_absolute() else p
    rec = {"file": rel.as_posix(), "role": role, "precision": precision,
           "format": FORMATS.get(rel.suffix.lower(), rel.suffix.lstrip(".").lower() or "dir"),
           "chain": chain if chain is not None else (rel.parent.as_posix() or "."),
           "label": label, "metrics": numbers(metrics), "cost": numbers(cost)}
    check_record(rec, out)
    return rec


def numbers(d: dict | None) -> dict | None:
    """A copy with numpy / int scalars as floats (JSON-safe); other values as they are."""
    if d is None:
        return None
    return {k: float(v) if isinstance(v, Number) and not isinstance(v, bool) else v for k, v in d.items()}


def check_record(rec: dict, stage_dir: Path | None = None, where: str = "artifact") -> None:
    """Raise ArtifactError naming the record and the key that is wrong."""
    name = f"{where} {rec.get('file')!r}"
    for key in ("file", "role", "precision", "format", "chain"):
        if not isinstance(rec.get(key), str) or not rec[key]:
            raise ArtifactError(f"{name}: '{key}' must be a non-empty string, got {rec.get(key)!r}")
    if rec["role"] not in ROLES:
        raise ArtifactError(f"{name}: role {rec['role']!r} is not one of {', '.join(ROLES)}")
    if not _PRECISION.match(rec["precision"]):
        raise ArtifactError(f"{name}: precision {rec['precision']!r} is not fp32/fp16 or int types joined by '+'")
    if Path(rec["file"]).is_absolute() or ".." in Path(rec["file"]).parts:
        raise ArtifactError(f"{name}: 'file' must be relative to the stage dir")
    for key, allowed in (("metrics", METRIC_KEYS), ("cost", COST_KEYS)):
        val = rec.get(key)
        if val is None:
            continue
        if not isinstance(val, dict):
            raise ArtifactError(f"{name}: '{key}' must be a mapping or null")
        if key == "metrics" and not set(allowed) & set(val):
            raise ArtifactError(f"{name}: 'metrics' carries none of {', '.join(allowed)}")
        if key == "cost" and set(val) - set(allowed):
            raise ArtifactError(f"{name}: unknown 'cost' keys {sorted(set(val) - set(allowed))}")
    if stage_dir is not None and not (Path(stage_dir) / rec["file"]).exists():
        raise ArtifactError(f"{name}: no such file under {stage_dir}")


def check_manifest(manifest: dict, stage_dir: Path | None = None) -> None:
    """Every record of a manifest, and its chain metrics, against the schema."""
    where = f"{manifest.get('stage', '?')} manifest"
    arts = manifest.get("artifacts")
    if not isinstance(arts, list):
        raise ArtifactError(f"{where}: 'artifacts' must be a list of records")
    seen = set()
    for rec in arts:
        check_record(rec, stage_dir, where=f"{where}: artifact")
        if rec["file"] in seen:
            raise ArtifactError(f"{where}: artifact {rec['file']!r} is recorded twice")
        seen.add(rec["file"])
    chains = manifest.get("chains") or {}
    for chain, m in chains.items():
        if not isinstance(m, dict) or not set(METRIC_KEYS) & set(m):
            raise ArtifactError(f"{where}: chains[{chain!r}] carries none of {', '.join(METRIC_KEYS)}")


def onnx_precision(model_or_path) -> str:
    """int8 / int16 / uint8 ... joined by '+' (the zero points' types of a QDQ graph), fp16, or fp32."""
    import onnx
    from onnx import TensorProto
    model = (onnx.load(str(model_or_path), load_external_data=False)
             if isinstance(model_or_path, (str, Path)) else model_or_path)
    ops = {n.op_type for n in model.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger"}:
        zp = {n.input[2] for n in model.graph.node
              if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2}
        types = {t.data_type for t in model.graph.initializer if t.name in zp}
        names = {TensorProto.INT8: "int8", TensorProto.UINT8: "uint8", TensorProto.INT16: "int16",
                 TensorProto.UINT16: "uint16", TensorProto.INT4: "int4", TensorProto.UINT4: "uint4"}
        found = sorted({names[t] for t in types if t in names}) or ["int8"]   # not the int32 bias zero points
        return "+".join(found)
    if any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"

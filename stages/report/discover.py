"""Find what the run produced: upstream stage dirs, their manifests, ONNX artifacts and their roles.

Every stage of ``stages/pipeline.yaml`` but the report (and stages reading it) is looked at, declared
dependency or not (a stage that is not a dependency is read from the run dir and
flagged, since it does not feed the report's cache key).  A stage whose manifest
says ``skipped``, and a stage with no manifest at all, go to the *skipped* list
with the reason.

Roles (``classify``), from the file name first, then from the graph:

* ``enhancer*`` / ``denoiser*``       restoration, [0, 1] in -> [0, 1] out (same shape)
* ``yunet*`` / ``detector*``          YuNet alone, raw 0..255 in -> 12 outputs
* ``pipeline*``                       the chain, [0, 1] in -> 12 outputs
* no name hint: 12 outputs named cls_8 .. kps_32 -> ``pipeline`` when the graph scales
  its input by 255 (the chain does, the bare detector does not), else ``detector``;
  one output shaped like the input -> ``restoration``; anything else -> ``other``.

ONNX files in the same directory form a *group* (one variant: FP32, pruned 50 %,
W8A8 joint, ...); a group with an enhancer, a denoiser and a detector is a chain.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from shared import units
from shared.models import OUTPUT_NAMES

DETECTION_ROLES = ("detector", "pipeline", "chain")
NAME_HINTS = (("enhancer", "enhancer"), ("denoiser", "denoiser"), ("yunet", "detector"),
              ("detector", "detector"), ("pipeline", "pipeline"))


# Where stages that predate the ``file`` convention keep their per-file metrics (dotted paths in
# manifest["metrics"]): train evaluates the PyTorch modules it exports, with ONNX parity checked.
ALIASES = {"train": {"enhancer.onnx": ["restoration.enhancer"], "denoiser.onnx": ["restoration.denoiser"],
                     "yunet.onnx": ["detection.detector_alone"], "pipeline.onnx": ["detection.pipeline"]}}
CHAIN_ALIASES = {"train": {"train": ["detection.pipeline", "restoration.chain"]}}


def _dotted(metrics: dict, path: str):
    for k in path.split("."):
        if not isinstance(metrics, dict) or k not in metrics:
            return None
        metrics = metrics[k]
    return metrics if isinstance(metrics, dict) else None


class ReportError(RuntimeError):
    """Bad upstream input, with the file named."""


@dataclass
class Artifact:
    stage: str
    path: Path                   # the ONNX file
    rel: str                     # path relative to the stage dir
    role: str                    # enhancer | denoiser | restoration | detector | pipeline | other
    group: str                   # "<stage>" or "<stage>/<subdir>"
    precision: str = "fp32"
    upstream: dict | None = None  # metrics the stage computed for this file (same eval config)
    external: dict | None = None  # not ONNX: the upstream entry (params, macs, bytes, latency_ms if given)

    @property
    def name(self) -> str:
        return f"{self.stage}/{self.rel}"

    @property
    def input_range(self) -> float:
        return units.input_range(self.role)


@dataclass
class StageInfo:
    name: str
    dir: Path
    manifest: dict | None
    declared: bool               # a dependency of report in stages/pipeline.yaml
    skipped: str | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)   # CSV files the stage wrote
    chain_metrics: dict[str, dict] = field(default_factory=dict)  # group -> upstream chain metrics


def read_manifest(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}:{e.lineno}: corrupt manifest ({e.msg})") from None


def _name_role(stem: str) -> str | None:
    low = stem.lower()
    for hint, role in NAME_HINTS:
        if low.startswith(hint) or re.search(rf"(^|[_\-.]){hint}", low):
            return role
    return None


def _scales_by_255(model) -> bool:
    consts = {t.name: t for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = a.t
    from onnx import numpy_helper
    for n in model.graph.node:
        if n.op_type in ("Mul", "Div"):
            for i in n.input:
                if i in consts:
                    v = numpy_helper.to_array(consts[i])
                    if v.size == 1 and abs(abs(float(v.reshape(-1)[0])) - (255.0 if n.op_type == "Mul" else 1 / 255)) < 1e-3:
                        return True
    return False


def _dims(value_info) -> list:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param
            for d in value_info.type.tensor_type.shape.dim]


def precision_of(model) -> str:
    """int8 / int16 / uint8 (quantized graphs), fp16, or fp32."""
    from onnx import TensorProto
    ops = {n.op_type for n in model.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger"}:
        zp = {n.input[2] for n in model.graph.node if n.op_type in ("QuantizeLinear",
                                                                      "DequantizeLinear") and len(n.input) > 2}
        types = {t.data_type for t in model.graph.initializer if t.name in zp}
        names = {TensorProto.INT8: "int8", TensorProto.UINT8: "uint8", TensorProto.INT16: "int16",
                 TensorProto.UINT16: "uint16", TensorProto.INT4: "int4", TensorProto.UINT4: "uint4"}
        found = sorted({names[t] for t in types if t in names}) or ["int8"]   # not the int32 bias zero points
        return "+".join(found)
    if any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


def classify(path: Path) -> tuple[str, str]:
    """(role, precision) of an ONNX file; see the module docstring."""
    import onnx
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises several types
        raise ReportError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from None
    outs = [o.name for o in model.graph.output]
    role = _name_role(path.stem)
    if role is None:
        if len(outs) == len(OUTPUT_NAMES) and set(outs) == set(OUTPUT_NAMES):
            role = "pipeline" if _scales_by_255(model) else "detector"
        elif len(outs) == 1 and model.graph.input and _dims(model.graph.output[0]) == _dims(model.graph.input[0]):
            role = "restoration"
        else:
            role = "other"
    return role, precision_of(model)


METRIC_KEYS = {"ap", "psnr", "nme", "ssim"}


def _walk(metrics, pick):
    """Depth-first over a metrics tree: ``pick(dict)`` for every dict; a dict it picks (not None)
    is yielded and not looked inside."""
    stack = [metrics]
    while stack:
        m = stack.pop()
        if isinstance(m, dict):
            hit = pick(m)
            if hit is not None:
                yield hit
                continue
            stack.extend(m.values())
        elif isinstance(m, list):
            stack.extend(m)


def _file_entry(m: dict):
    if isinstance(m.get("onnx_file"), str) and isinstance(m.get("onnx"), dict):
        m = {"file": m["onnx_file"], "eval": m["onnx"]}
    cand = m.get("eval") if isinstance(m.get("eval"), dict) else m
    return (m, cand) if isinstance(m.get("file"), str) and METRIC_KEYS & set(cand) else None


def _file_entries(metrics):
    """(entry, metrics) for every dict in an upstream ``metrics`` tree that names a ``file``
    and carries metric keys, itself or under ``eval`` (not looking inside such an entry).

    The quantize stage's result rows name theirs as ``onnx_file`` with the ONNX Runtime
    measurement under ``onnx`` (next to the simulation's under ``sim``): read as ``file`` / ``eval``.
    A file the manifest and the stage's metrics.json both list comes once."""
    seen = set()
    for entry, m in _walk(metrics, _file_entry):
        if entry["file"] not in seen:
            seen.add(entry["file"])
            yield entry, m


def chain_entries(metrics):
    """(group dir, metrics) for every ``{"chain": <dir relative to the stage>, "eval": {...}}`` in a
    metrics tree: a stage's own measurement of the enhancer -> denoiser -> detector files in that dir."""
    return _walk(metrics, lambda m: (m["chain"], m["eval"]) if isinstance(m.get("chain"), str) and isinstance(
        m.get("eval"), dict) and METRIC_KEYS & set(m["eval"]) else None)


def file_metrics(metrics, rel: str) -> dict | None:
    """The metrics an upstream ``metrics`` tree gives for file ``rel`` (or its basename)."""
    for entry, m in _file_entries(metrics):
        f = entry["file"]
        if f == rel or (Path(rel).name == f and "/" not in f):
            return m
    return None


def measured_files(metrics, skip_suffix: str = ".onnx"):
    """(entry, metrics) for every file in a metrics tree that is not ONNX (a HEF run in the
    Hailo emulator, an ESP-DL model on the simulator, ...): artifacts only their stage can run."""
    return ((e, m) for e, m in _file_entries(metrics) if not e["file"].endswith(skip_suffix))


def stage_metrics(info: StageInfo) -> dict:
    """The manifest's metrics plus the stage's own ``metrics.json`` (the quantize stage keeps its
    per-file result rows there); both are written by the same run of the stage."""
    metrics = {"manifest": (info.manifest or {}).get("metrics") or {}}
    if info.manifest is not None and (info.dir / "metrics.json").exists():
        try:
            metrics["metrics.json"] = json.loads((info.dir / "metrics.json").read_text())
        except json.JSONDecodeError as e:
            raise ReportError(f"{info.dir / 'metrics.json'}:{e.lineno}: corrupt metrics ({e.msg})") from None
    return metrics


def scan_stage(info: StageInfo, eval_cfg: dict, reuse: bool) -> None:
    """Fill info.artifacts and info.tables from the files under info.dir."""
    same_eval = bool(info.manifest) and (info.manifest.get("config") or {}).get("eval") == eval_cfg
    metrics = stage_metrics(info)
    for p in sorted(info.dir.rglob("*.onnx")):
        rel = p.relative_to(info.dir)
        if any(part.startswith(".") for part in rel.parts):
            continue
        role, precision = classify(p)
        group = info.name if rel.parent == Path(".") else f"{info.name}/{rel.parent.as_posix()}"
        up = None
        if reuse and same_eval:
            up = file_metrics(metrics, rel.as_posix())
            for path in ALIASES.get(info.name, {}).get(rel.as_posix(), []) if up is None else []:
                up = _dotted(metrics["manifest"], path)
        info.artifacts.append(Artifact(info.name, p, rel.as_posix(), role, group, precision, up))
    if reuse and same_eval:
        for group, paths in CHAIN_ALIASES.get(info.name, {}).items():
            parts = [_dotted(metrics["manifest"], p) for p in paths]
            if all(parts):
                info.chain_metrics[group] = {k: v for part in parts for k, v in part.items()}
        for rel, m in chain_entries(metrics):
            info.chain_metrics.setdefault(info.name if rel in ("", ".") else f"{info.name}/{rel}", m)
    if same_eval:
        for entry, m in measured_files(metrics):
            rel = entry["file"]
            role = entry.get("role") or _name_role(Path(rel).stem) or ("pipeline" if "ap" in m else "restoration")
            parent = Path(rel).parent
            group = info.name if parent == Path(".") else f"{info.name}/{parent.as_posix()}"
            info.artifacts.append(Artifact(info.name, info.dir / rel, rel, role, group,
                                           str(entry.get("precision", "?")), m, external=entry))
    info.tables = sorted(p for p in info.dir.rglob("*.csv") if not any(
        part.startswith(".") for part in p.relative_to(info.dir).parts))


def discover(run_dir: Path, dag_order: list[str], deps: list[str], exclude: set[str], eval_cfg: dict,
             reuse: bool = True) -> list[StageInfo]:
    """StageInfo for every stage of the DAG but ``exclude`` (the report and anything reading it)."""
    out = []
    for name in dag_order:
        if name in exclude:
            continue
        d = Path(run_dir) / name
        info = StageInfo(name, d, read_manifest(d / "manifest.json"), name in deps)
        if info.manifest is None:
            info.skipped = f"did not run in this run (no {d.name}/manifest.json): `invoke stage {name}`"
        elif info.manifest.get("skipped"):
            info.skipped = str(info.manifest["skipped"])
        if info.manifest is not None:
            scan_stage(info, eval_cfg, reuse)
        out.append(info)
    return out


def groups(stages: list[StageInfo]) -> dict[str, dict[str, Artifact]]:
    """group -> {role: artifact} (the first file of each role in a group)."""
    out: dict[str, dict[str, Artifact]] = {}
    for s in stages:
        for a in s.artifacts:
            if a.external is None:  # only ONNX files can be chained here
                out.setdefault(a.group, {}).setdefault(a.role, a)
    return out


def is_chain(g: dict[str, Artifact]) -> bool:
    return all(r in g for r in ("enhancer", "denoiser", "detector"))


def summary(stages: list[StageInfo]) -> dict:
    return {s.name: {"artifacts": len(s.artifacts), "skipped": s.skipped, "declared": s.declared,
                     "tables": [t.name for t in s.tables]} for s in stages}


__all__ = ["Artifact", "StageInfo", "ReportError", "classify", "discover", "file_metrics", "groups",
           "is_chain", "precision_of", "summary", "DETECTION_ROLES"]

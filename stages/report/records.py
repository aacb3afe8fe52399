"""What the run produced, from the upstream stages' artifact records (``manifest["artifacts"]``).

Every stage of ``stages/pipeline.yaml`` but the report (and stages reading it) is looked at, declared
dependency or not (a stage that is not a dependency is read from the run dir and flagged, since it
does not feed the report's cache key).  A stage whose manifest says ``skipped``, and a stage with no
manifest at all, go to the *skipped* list with the reason.

Each record (shared/artifacts.py) says what a file is: role, precision, the chain (folder) it belongs
to, what its stage measured for it, and for files the report cannot open (HEF, ESP-DL) their cost.
Records of one chain with the three nets' roles form a chain; ``manifest["chains"]`` holds what the
stage measured for each whole chain.  Nothing here guesses from file names or graphs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shared import artifacts as artlib
from shared import units
from shared.manifest import read_json

DETECTION_ROLES = ("detector", "pipeline", "chain")


class ReportError(RuntimeError):
    """Bad upstream input, with the file named."""


@dataclass
class Artifact:
    stage: str
    path: Path                   # the model file (or, role chain, the folder of the models run as one)
    rel: str                     # path relative to the stage dir
    role: str                    # enhancer | denoiser | detector | pipeline | chain
    group: str                   # "<stage>" or "<stage>/<chain folder>"
    precision: str = "fp32"
    upstream: dict | None = None  # metrics the stage computed for this file (same eval config)
    external: dict | None = None  # not ONNX: the record's cost (params, macs, bytes, latency_ms if given)

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


def _group(stage: str, chain: str) -> str:
    return stage if chain in ("", ".") else f"{stage}/{chain}"


def scan_stage(info: StageInfo, eval_cfg: dict, reuse: bool) -> None:
    """Fill info.artifacts, info.chain_metrics and info.tables from the stage's manifest records."""
    m = info.manifest
    if "artifacts" not in m and m.get("skipped"):   # a stage that could not run wrote nothing to describe
        m = {**m, "artifacts": []}
    if "artifacts" not in m:
        raise ReportError(f"{info.dir / 'manifest.json'}: no 'artifacts' records (written before records existed): "
                          f"rerun `invoke stage {info.name}`")
    try:
        artlib.check_manifest(m, info.dir)
    except artlib.ArtifactError as e:
        raise ReportError(f"{info.dir / 'manifest.json'}: {e}") from None
    same_eval = (m.get("config") or {}).get("eval") == eval_cfg
    for rec in m["artifacts"]:
        if rec["role"] == "chain" and rec["format"] == "onnx":
            raise ReportError(f"{info.dir / 'manifest.json'}: {rec['file']}: an ONNX file cannot have role chain")
        up = rec["metrics"] if same_eval else None
        if rec["format"] == "onnx":
            info.artifacts.append(Artifact(info.name, info.dir / rec["file"], rec["file"], rec["role"],
                                           _group(info.name, rec["chain"]), rec["precision"], up if reuse else None))
        elif same_eval and up is not None:   # only its stage can run it: its figures, or nothing to show
            info.artifacts.append(Artifact(info.name, info.dir / rec["file"], rec["file"], rec["role"],
                                           _group(info.name, rec["chain"]), rec["precision"], up,
                                           external=dict(rec.get("cost") or {})))
    if reuse and same_eval:
        info.chain_metrics.update({_group(info.name, c): dict(v) for c, v in (m.get("chains") or {}).items()})
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
        info = StageInfo(name, d, read_json(d / "manifest.json", ReportError), name in deps)
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
    return all(r in g for r in units.ORDER)


def summary(stages: list[StageInfo]) -> dict:
    return {s.name: {"artifacts": len(s.artifacts), "skipped": s.skipped, "declared": s.declared,
                     "tables": [t.name for t in s.tables]} for s in stages}


__all__ = ["Artifact", "StageInfo", "ReportError", "discover", "groups", "is_chain", "summary", "DETECTION_ROLES"]

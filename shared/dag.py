"""The stage graph from ``stages/pipeline.yaml``: order, dependencies, dependants."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from shared.config import REPO

PIPELINE = REPO / "stages" / "pipeline.yaml"


@dataclass(frozen=True)
class Stage:
    name: str
    deps: tuple[str, ...]
    image: str
    needs: tuple[str, ...] = field(default=())
    sections: tuple[str, ...] = field(default=())   # shared config sections it reads, e.g. eval


def load_dag(path: Path = PIPELINE) -> dict[str, Stage]:
    raw = yaml.safe_load(Path(path).read_text()) or {}
    dag: dict[str, Stage] = {}
    for name, spec in raw.items():
        unknown = set(spec) - {"deps", "image", "needs", "sections"}
        if unknown:
            raise ValueError(f"{path}: {name}: unknown key(s) {sorted(unknown)}")
        for d in spec.get("deps", []):
            if d not in dag:
                raise ValueError(f"{path}: {name}: dependency '{d}' must be declared above it")
        dag[name] = Stage(name, tuple(spec.get("deps", [])), spec.get("image", name),
                          tuple(spec.get("needs", [])), tuple(spec.get("sections", [])))
    return dag


def upstream(dag: dict[str, Stage], name: str) -> list[str]:
    """All stages ``name`` depends on, transitively, in run order, plus itself."""
    want, stack = set(), [name]
    while stack:
        s = stack.pop()
        if s not in want:
            want.add(s)
            stack.extend(dag[s].deps)
    return [s for s in dag if s in want]


def dependants(dag: dict[str, Stage], name: str) -> list[str]:
    """Stages that read ``name``'s output, transitively, in run order."""
    hit = {name}
    for s in dag.values():
        if hit & set(s.deps):
            hit.add(s.name)
    return [s for s in dag if s in hit and s != name]

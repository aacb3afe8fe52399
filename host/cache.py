"""Cache keys and stage status (done / stale / missing / skipped), DVC-style.

A stage's key hashes: its config section (plus the seed), the manifest hashes
of the stages it reads, and its environment (runner + image fingerprint).  A
stage whose manifest carries the same key is done and is not run again.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared import config as cfglib
from shared.manifest import MANIFEST, file_sha256, manifest_hash, read_manifest
from shared.manifest import stage_key as manifest_key
from shared.dag import Stage


def stage_key(stage: Stage, cfg: dict, run_dir: Path, env_id: str) -> str:
    inputs = {d: manifest_hash(run_dir, d) for d in stage.deps}
    return manifest_key(stage.name, cfglib.section(cfg, stage.name, stage.sections), inputs, env_id)


@dataclass
class Status:
    stage: str
    state: str       # done | stale | corrupt | missing | skipped | blocked | failed
    reason: str


def stage_status(stage: Stage, cfg: dict, run_dir: Path, env_id: str, upstream: dict[str, Status]) -> Status:
    for d in stage.deps:
        if upstream[d].state in ("missing", "blocked", "corrupt"):
            return Status(stage.name, "blocked" if read_manifest(run_dir, stage.name) is None else "stale",
                          f"upstream '{d}' is {upstream[d].state}")
    m = read_manifest(run_dir, stage.name)
    if m is None:
        return Status(stage.name, "missing", "never run")
    if m.get("cache_key") == stage_key(stage, cfg, run_dir, env_id):
        if m.get("skipped"):
            return Status(stage.name, "skipped", m["skipped"])
        altered = verify_outputs(run_dir, stage.name, m)
        if altered:
            return Status(stage.name, "corrupt", f"corrupt: {altered}; redo it: invoke stage {stage.name} "
                                                 f"--config {cfg.get('_source', '<config>')}")
        return Status(stage.name, "done", f"{m.get('wall_s', '?')} s, {m.get('started', '?')}")
    reasons = []
    section = cfglib.section(cfg, stage.name, stage.sections)
    if m.get("config_hash") != cfglib.sha256_of(section):
        changed = _changed_keys(m.get("config", {}), section)
        reasons.append("config changed" + (f" ({', '.join(changed[:4])})" if changed else ""))
    for d in stage.deps:
        if m.get("inputs", {}).get(d) != manifest_hash(run_dir, d):
            reasons.append(f"upstream '{d}' changed")
    if (m.get("env") or {}).get("id") != env_id:
        reasons.append("image changed (code, requirements or runner)")
    return Status(stage.name, "stale", "; ".join(reasons) or "cache key changed")


def verify_outputs(run_dir: Path, stage: str, m: dict) -> str | None:
    """None when every output the manifest lists is there as written, else the first one that is not.

    DVC's fast path: a file whose size matches and that is not newer than the manifest (written
    last) is taken as is; a newer one is hashed and compared with the manifest's sha256."""
    hashes = m.get("hashes")
    if hashes is None:           # a manifest from before content hashes: nothing to check against
        return None
    root = Path(run_dir) / stage
    ref = (root / MANIFEST).stat().st_mtime
    for rel, size in (m.get("files") or {}).items():
        if rel == MANIFEST:
            continue
        try:
            st = (root / rel).stat()
        except FileNotFoundError:
            return f"{rel} (missing)"
        if st.st_size != size:
            return f"{rel} ({st.st_size} bytes, {size} written)"
        if st.st_mtime > ref and file_sha256(root / rel) != hashes.get(rel):
            return f"{rel} (content changed after the stage wrote it)"
    return None


def _changed_keys(old, new, prefix="") -> list[str]:
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [prefix.rstrip(".")] if old != new else []
    out = []
    for k in sorted(set(old) | set(new)):
        out += _changed_keys(old.get(k), new.get(k), f"{prefix}{k}.")
    return out

"""The run cache: a stage's outputs kept by cache key, so switching a config value back restores them.

Before a stage runs with key K, the driver *stashes* the outputs it is about to replace
(``<run>/<stage>/``, made with another key K0) as ``<run>/.cache/<stage>/<K0>/``, and *restores*
``<run>/.cache/<stage>/<K>/`` instead of running when that exists and is intact (its manifest
carries K and its files their recorded sizes and hashes).  Both are renames on the same volume.
``invoke clean --cache`` removes the cache (DVC's ``dvc gc``).
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from host.cache import verify_outputs
from shared.manifest import MANIFEST

log = logging.getLogger("pipeline")
CACHE = ".cache"


def entry(run_dir: Path, stage: str, key: str) -> Path:
    return run_dir / CACHE / stage / key


def _key_of(stage_dir: Path) -> str | None:
    try:
        return json.loads((stage_dir / MANIFEST).read_text()).get("cache_key")
    except (OSError, json.JSONDecodeError):
        return None


def stash(run_dir: Path, stage: str) -> Path | None:
    """Move the stage's current outputs into the cache under their own key (None: nothing to keep)."""
    cur = run_dir / stage
    key = _key_of(cur) if cur.is_dir() else None
    if not key:
        return None
    dst = entry(run_dir, stage, key)
    if dst.exists():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    cur.rename(dst)
    return dst


def restore(run_dir: Path, stage: str, key: str) -> bool:
    """Put the cached outputs made with ``key`` back in place (after stashing the current ones)."""
    src = entry(run_dir, stage, key)
    if not src.is_dir() or _key_of(src) != key:
        return False
    m = json.loads((src / MANIFEST).read_text())
    bad = verify_outputs(src.parent, src.name, m)
    if bad:
        log.warning("%-10s cached outputs for this key are damaged (%s): running it again", stage, bad)
        shutil.rmtree(src)
        return False
    stash(run_dir, stage)
    src.rename(run_dir / stage)
    return True


def clear(run_dir: Path) -> Path | None:
    p = run_dir / CACHE
    if p.is_dir():
        shutil.rmtree(p)
        return p
    return None

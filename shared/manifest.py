"""Stage outputs on the shared volume: atomic directories and their manifest.

Layout of a run (``/work`` in the containers, ``volumes/`` on the host)::

    <run>/<stage>/manifest.json     written last; its presence means "done"
    <run>/<stage>/...               the stage's files
    <run>/.tmp/<stage>-<pid>/       work in progress, renamed into place at the end

A stage that is killed leaves only ``.tmp`` debris, which the next run of that
stage removes; the previous complete output stays untouched until the new one
is ready.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

from shared.errors import ExpectedError

MANIFEST = "manifest.json"

# What a run records about itself rather than what it made. Downstream cache keys hash the outputs'
# *content* digests, which leave these out, so a rerun that reproduces the same weights and metrics
# changes nothing below it; the manifest's sha256 ``hashes`` still cover every byte (integrity).
RECORD_FILES = ("*.log", "*.log.json", "*.ppq.json")     # logs (mmdet's is named by the clock), esp-ppq's
#                                                          dump (keyed by Python object ids)
VOLATILE_KEY = re.compile(r"(^|_)(seconds|ms|speedup|images_per_s)$")   # JSON keys measuring time or speed


class MissingInput(ExpectedError, RuntimeError):
    """An upstream stage's output is absent or incomplete."""


def manifest_path(run_dir: Path, stage: str) -> Path:
    return Path(run_dir) / stage / MANIFEST


def read_json(path: Path, error: type[Exception] = MissingInput, what: str = "manifest"):
    """The JSON document at ``path`` (None when there is no file); a corrupt one raises ``error``
    with one line naming the file and line (every JSON record of the toolchain is read here)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise error(f"{path}:{e.lineno}: corrupt {what} ({e.msg})") from None


def read_manifest(run_dir: Path, stage: str) -> dict | None:
    return read_json(manifest_path(run_dir, stage))


def build(name: str, config: dict, section: dict, key: str, inputs: dict, env: dict, started: float,
          wall: float, out: Path, result: dict, artifacts=(), chains: dict | None = None) -> dict:
    """The manifest of one stage output (the one place its layout is written: the stage's own run
    in ``shared.stage.main``, a host-side skip in ``host.driver.write_skip``)."""
    from shared.config import sha256_of
    hashes = hash_files(out)
    return {
        "stage": name, "run": config["run"], "cache_key": key,
        "config": section, "config_hash": sha256_of(section), "config_source": config["_source"],
        "inputs": inputs, "seed": config["seed"], "env": env,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "wall_s": round(wall, 3), "metrics": result.get("metrics", {}), "skipped": result.get("skipped"),
        "files": list_files(out), "hashes": hashes, "content": content_hashes(out, hashes),
        "artifacts": sorted(artifacts, key=lambda r: r["file"]), "chains": chains or {},
    }


def manifest_hash(run_dir: Path, stage: str) -> str | None:
    """What a downstream cache key hashes of ``stage``: its outputs' content digests (DVC-style: a
    forced rerun that reproduces identical files changes nothing below it; :func:`content_hashes`),
    plus whether it was skipped.  A manifest with only sha256 ``hashes`` uses those; one from
    before content hashes falls back to the manifest's own bytes."""
    p = manifest_path(run_dir, stage)
    if not p.exists():
        return None
    try:
        m = json.loads(p.read_text())
    except json.JSONDecodeError:
        return hashlib.sha256(p.read_bytes()).hexdigest()
    if "content" in m:
        blob = json.dumps({"content": m["content"], "skipped": m.get("skipped")}, sort_keys=True)
    elif "hashes" in m:
        blob = json.dumps({"hashes": m["hashes"], "skipped": m.get("skipped")}, sort_keys=True)
    else:
        return hashlib.sha256(p.read_bytes()).hexdigest()
    return hashlib.sha256(blob.encode()).hexdigest()


def stage_key(name: str, section: dict, inputs: dict, env_id: str | None) -> str:
    """The cache key of a stage run: its config section, its inputs' hashes, its environment."""
    from shared.config import sha256_of
    return sha256_of({"stage": name, "config": section, "inputs": inputs, "env": env_id})


def file_sha256(p: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def output_files(root: Path) -> list[str]:
    """Relative paths of every file under ``root`` but the manifest, sorted."""
    root = Path(root)
    return [str(p.relative_to(root)) for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST]


def hash_files(root: Path) -> dict[str, str]:
    """Relative path -> sha256, for every file under ``root`` (the manifest excluded)."""
    return {rel: file_sha256(Path(root) / rel) for rel in output_files(root)}


def is_record(rel: str) -> bool:
    """Whether the output file ``rel`` is a record of the run (a log, a dump), not a result."""
    name = Path(rel).name
    return any(fnmatch.fnmatch(name, g) for g in RECORD_FILES)


def _strip_volatile(obj):
    if isinstance(obj, dict):
        return {k: _strip_volatile(v) for k, v in obj.items() if not VOLATILE_KEY.search(str(k))}
    if isinstance(obj, list):
        return [_strip_volatile(v) for v in obj]
    return obj


def content_sha256(p: Path, sha256: str | None = None) -> str:
    """A file's digest for cache keys: a JSON document without its time and speed keys
    (``VOLATILE_KEY``), canonically dumped; any other file (or JSON that does not parse) byte for byte
    (``sha256``, when the caller has it already)."""
    p = Path(p)
    if p.suffix == ".json":
        try:
            doc = json.loads(p.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            return sha256 or file_sha256(p)
        blob = json.dumps(_strip_volatile(doc), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()
    return sha256 or file_sha256(p)


def content_hashes(root: Path, hashes: dict[str, str] | None = None) -> dict[str, str]:
    """Relative path -> :func:`content_sha256`, for every output under ``root`` but the manifest and
    the run's records (``RECORD_FILES``): what downstream cache keys hash. ``hashes`` (:func:`hash_files`
    of the same ``root``) spares reading the non-JSON files a second time."""
    root = Path(root)
    hashes = hashes if hashes is not None else hash_files(root)
    return {rel: content_sha256(root / rel, sha) for rel, sha in hashes.items() if not is_record(rel)}


def require_manifest(run_dir: Path, stage: str, needed_by: str) -> dict:
    """The upstream manifest, or a MissingInput error naming the file.

    A *skipped* upstream (its manifest has ``skipped: "needs X ..."``) is returned
    like any other: the reading stage decides what to do without it (the report
    lists it; the hailo stage still writes what it can without the SDK).
    """
    m = read_manifest(run_dir, stage)
    if m is None:
        raise MissingInput(
            f"{needed_by}: missing upstream artifact {manifest_path(run_dir, stage)} "
            f"(run `invoke stage {stage}` first)")
    return m


def write_json(path: Path, obj) -> None:
    """Write JSON via a temp file and rename, so readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def list_files(root: Path) -> dict[str, int]:
    """Relative path -> size in bytes, for every file under ``root``."""
    root = Path(root)
    return {str(p.relative_to(root)): p.stat().st_size
            for p in sorted(root.rglob("*")) if p.is_file()}


class AtomicStageDir:
    """Context manager yielding a temp dir that becomes ``<run>/<stage>`` on success."""

    def __init__(self, run_dir: Path, stage: str):
        self.run_dir = Path(run_dir)
        self.stage = stage
        self.final = self.run_dir / stage
        self.tmp_root = self.run_dir / ".tmp"
        self.tmp = self.tmp_root / f"{stage}-{os.getpid()}-{int(time.time() * 1000)}"

    def clean_debris(self) -> list[Path]:
        gone = sorted(self.tmp_root.glob(f"{self.stage}-*")) if self.tmp_root.exists() else []
        for p in gone:
            shutil.rmtree(p, ignore_errors=True)
        return gone

    def __enter__(self) -> Path:
        self.clean_debris()
        self.tmp.mkdir(parents=True)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        old = self.tmp_root / f"{self.stage}-old-{os.getpid()}"
        if self.final.exists():
            os.replace(self.final, old)
        os.replace(self.tmp, self.final)
        shutil.rmtree(old, ignore_errors=True)
        return False

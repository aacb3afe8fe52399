"""The contract every stage follows: ``python -m stages.<name> --config FILE``.

A stage module calls :func:`main` with its ``run(ctx)`` function.  ``run``
writes its files under ``ctx.out`` (a temp dir that becomes
``<work>/<run>/<stage>/`` only if ``run`` returns) and returns a dict:

    {"metrics": {...}}                       # goes into manifest.json
    {"skipped": "needs X; how to provide"}   # the stage could not run here

and describes every model file it wrote with ``ctx.artifact(...)`` (and every whole system it
measured with ``ctx.chain_metrics(...)``): typed records, checked against ``shared.artifacts`` and
written to ``manifest["artifacts"]`` / ``manifest["chains"]``, which is all the report reads.

The manifest records the config section and its hash, the input manifests'
hashes, the environment (image id, Python, packages), the seed, wall time and
the metrics.  The host (``tasks.py``) passes ``--cache-key`` and
``--env-id``; run by hand they default to values computed here.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import sys
import time
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

from shared import artifacts as artlib
from shared.allocator import keep_freed_memory
from shared import config as cfglib
from shared.errors import ExpectedError, print_for_log
from shared.manifest import build as build_manifest
from shared.manifest import (AtomicStageDir, MissingInput, manifest_hash, stage_key,
                             require_manifest, write_json)
from shared.dag import load_dag

EXIT_FAILED, EXIT_CONFIG, EXIT_INPUT = 1, 2, 3


@dataclass
class StageContext:
    name: str
    cfg: dict                 # this stage's validated section
    config: dict              # the whole validated config
    run_dir: Path             # <work>/<run>
    out: Path                 # where to write (temp, renamed on success)
    seed: int
    log: logging.Logger
    inputs: dict[str, Path] = field(default_factory=dict)      # upstream stage -> its dir
    input_manifests: dict[str, dict] = field(default_factory=dict)
    artifacts: list[dict] = field(default_factory=list)         # records for manifest["artifacts"]
    chains: dict[str, dict] = field(default_factory=dict)       # chain -> metrics of the whole system

    def input(self, stage: str) -> Path:
        if stage not in self.inputs:
            raise MissingInput(f"{self.name}: '{stage}' is not a declared dependency (stages/pipeline.yaml)")
        return self.inputs[stage]

    def artifact(self, path, role: str, precision: str, chain: str | None = None, metrics: dict | None = None,
                 cost: dict | None = None, label: str | None = None) -> dict:
        """Record a model file this stage wrote under ``out`` (see shared/artifacts.py); returns the record.
        Recording the same file again replaces its record (a later, fuller measurement)."""
        rec = artlib.make_record(self.out, path, role, precision, chain, metrics, cost, label)
        self.artifacts[:] = [r for r in self.artifacts if r["file"] != rec["file"]] + [rec]
        return rec

    def chain_metrics(self, chain: str, metrics: dict) -> None:
        """Record what this stage measured for the whole system in ``chain`` (a folder of its output)."""
        self.chains[chain or "."] = artlib.numbers(metrics)



def default_work() -> Path:
    env = os.environ.get("JMMC_WORK")
    if env:
        return Path(env)
    return Path("/work") if Path("/work").is_dir() else cfglib.REPO / "volumes"


def setup_logging(name: str) -> logging.Logger:
    """The stage's logger, ``stages.<name>``, with its own stderr handler on ``stages``.

    Not the root logger's: mmcv's ``get_logger`` (called by mmdet's runner and builders) turns every
    root StreamHandler down to ERROR, which silenced the stages' INFO lines once mmdet was in use.
    Libraries keep logging through the root logger (warnings and up)."""
    fmt = f"%(asctime)s [{name}] %(levelname)s %(message)s"
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format=fmt, datefmt="%H:%M:%S")
    top = logging.getLogger("stages")
    for h in [h for h in top.handlers if getattr(h, "jmmc_stage", False)]:
        top.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.jmmc_stage = True
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    top.addHandler(handler)
    top.setLevel(os.environ.get("JMMC_LOG", "INFO"))
    top.propagate = False
    return logging.getLogger(f"stages.{name}")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy as np
        np.random.seed(seed)
    except ImportError:
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def package_versions() -> dict[str, str]:
    return {d.metadata["Name"].lower(): d.version for d in metadata.distributions() if d.metadata["Name"]}


def parse_args(name: str, argv):
    p = argparse.ArgumentParser(prog=f"python -m stages.{name}", description=f"Run the {name} stage.")
    p.add_argument("--config", default=str(cfglib.REPO / "configs" / "demo.yaml"), help="run config (YAML)")
    p.add_argument("--work", type=Path, default=None, help="shared volume root (default: /work or ./volumes)")
    p.add_argument("--cache-key", default=None, help="set by the host; recorded in the manifest")
    p.add_argument("--env-id", default=os.environ.get("JMMC_ENV_ID"), help="image id or venv fingerprint")
    return p.parse_args(argv)


def main(name: str, run: Callable[[StageContext], dict], argv=None) -> int:
    args = parse_args(name, argv)
    keep_freed_memory()   # no mmap/munmap per large tensor (shared/allocator.py)
    log = setup_logging(name)
    try:
        config = cfglib.load_config(args.config)
    except cfglib.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    run_dir = (args.work or default_work()) / config["run"]
    stage = load_dag()[name]
    deps = stage.deps
    try:
        input_manifests = {d: require_manifest(run_dir, d, name) for d in deps}
    except MissingInput as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT
    inputs_hash = {d: manifest_hash(run_dir, d) for d in deps}
    section = cfglib.section(config, name, stage.sections)
    key = args.cache_key or stage_key(name, section, inputs_hash, args.env_id)
    seed_everything(config["seed"])
    started = time.time()
    log.info("run %s -> %s (config %s)", config["run"], run_dir / name, config["_source"])
    atomic = AtomicStageDir(run_dir, name)
    try:
        with atomic as out:
            ctx = StageContext(name, config.get(name.replace("-", "_"), {}), config, run_dir, out,
                               config["seed"], log, {d: run_dir / d for d in deps}, input_manifests)
            result = run(ctx) or {}
            wall = time.time() - started
            env = {"id": args.env_id, "python": platform.python_version(),
                   "runner": os.environ.get("JMMC_RUNNER", "manual"), "packages": package_versions()}
            manifest = build_manifest(name, config, section, key, inputs_hash, env, started, wall, out, result,
                                      ctx.artifacts, ctx.chains)
            artlib.check_manifest(manifest, out)
            write_json(out / "manifest.json", manifest)
    except ExpectedError as e:   # bad input / config / upstream: one line; the traceback for the log only
        print_for_log(e)
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(e, cfglib.ConfigError) else EXIT_INPUT
    except Exception as e:  # noqa: BLE001 - a bug: the traceback, then one clear line
        traceback.print_exc()
        print(f"error: stage {name} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED
    if manifest["skipped"]:
        print(f"{name}: skipped: {manifest['skipped']}")
    log.info("done in %.1f s -> %s", wall, run_dir / name)
    return 0

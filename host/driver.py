"""What the Invoke tasks do: build images, run stages in order with the cache, report status.

Every failure here is a :class:`PipelineError` with one clear line; tasks.py
prints it and exits non-zero.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import yaml

from host import images as img
from host import runcache, scheduler
from host.cache import Status, stage_key, stage_status
from host.runners import VOLUMES, RunnerError, choose_runner, make_runner, run_logged
from shared import config as cfglib
from shared.config import REPO
from shared.dag import load_dag, upstream
from shared.manifest import MANIFEST, AtomicStageDir, manifest_hash, read_manifest, write_json
from shared.manifest import build as build_manifest

log = logging.getLogger("pipeline")
OS_RECORD = VOLUMES / ".os-images.json"
WHEELHOUSE = VOLUMES / "wheelhouse"


class PipelineError(RuntimeError):
    pass


def load(config_path: str) -> dict:
    try:
        cfg = cfglib.load_config(config_path)
    except cfglib.ConfigError as e:
        raise PipelineError(str(e)) from None
    if cfg["executor"]["kind"] == "ray":    # the stage containers join the cluster's network (compose.ray.yaml)
        os.environ["JMMC_RAY"] = "1"
    return cfg


def write_resolved(cfg: dict) -> Path:
    """The validated config with defaults filled, where every stage container can read it."""
    path = VOLUMES / cfg["run"] / ".config" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(cfg, sort_keys=False)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def os_images(refresh: bool = False) -> dict[str, str]:
    """OS base images, resolved once (registry or local Debian) and remembered in volumes/."""
    if OS_RECORD.exists() and not refresh:
        return json.loads(OS_RECORD.read_text())
    chosen = img.resolve_os_images()
    OS_RECORD.parent.mkdir(parents=True, exist_ok=True)
    OS_RECORD.write_text(json.dumps(chosen, indent=2) + "\n")
    return chosen


def recorded_os_images() -> dict[str, str]:
    return json.loads(OS_RECORD.read_text()) if OS_RECORD.exists() else dict(img.DEFAULT_OS)


def build_env(osi: dict[str, str], server_args: dict) -> dict[str, str]:
    ca = os.environ.get("JMMC_PIP_CA") or img.host_pip_sources()[2] or ""
    if ca and not Path(ca).is_file():
        raise PipelineError(f"CA bundle {ca} (JMMC_PIP_CA or the host's pip cert) does not exist")
    return {"JMMC_OS_LIGHT": osi["light"], "JMMC_OS_HEAVY": osi["heavy"], "JMMC_PIP_CA": ca or "/dev/null",
            "JMMC_UID": str(os.getuid()), "JMMC_GID": str(os.getgid()), **server_args}


@contextlib.contextmanager
def build_lock():
    """One image build at a time per checkout (they share the package server port)."""
    path = VOLUMES / ".build.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another image build is running in this checkout; waiting for it")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def build_images(names: list[str], force: bool = False, refresh_base: bool = False) -> dict[str, str]:
    """Build the images of ``names`` (image names) parent-first; returns {image: fingerprint}.

    Images whose label already carries their fingerprint are left alone, and
    the package server starts only when something has to be built.
    """
    images = img.load_images()
    unknown = [n for n in names if n not in images]
    if unknown:
        raise PipelineError(f"unknown image(s) {unknown}; known: {sorted(images)} (docker/images.yaml)")
    osi = os_images(refresh_base)
    for n in list(names):
        base = images[img.chain(images, n)[0]].get("base")
        if base and not img.image_available(base, pull=False) and not img.image_available(base):
            log.warning("image %s not built: needs %s (`docker pull %s` or `docker load` it)", n, base, base)
            names = [m for m in names if m != n]
    fps = {n: img.fingerprint(images, n, osi) for n in names}
    todo = [n for n in names if force or img.image_label(img.tag(n)) != fps[n]]
    if not todo:
        return fps
    t0 = time.time()
    try:
        with build_lock(), img.package_server(WHEELHOUSE) as server_args:
            env = build_env(osi, server_args)
            done: set[str] = set()
            for n in todo:
                _, built = img.build(images, n, env, force, done=done)
                log.info("image %s %s", img.tag(n), "built" if built else "up to date")
    except img.ImageError as e:
        raise PipelineError(str(e)) from None
    log.info("images ready in %.1f s", time.time() - t0)
    return fps


class RunFailed(PipelineError):
    """Some stages failed: ``rows`` has every stage's outcome (failed, blocked, done)."""

    def __init__(self, msg: str, rows: list[Status]):
        super().__init__(msg)
        self.rows = rows


def run(targets: list[str], config_path: str, runner: str = "auto", force: list[str] | bool = False,
        build: bool = True, jobs: int = 1, keep_going: bool = False) -> list[Status]:
    """Run ``targets`` and everything upstream of them that is not done, in DAG order; ``jobs`` ready
    stages at once (the cores split between them); ``keep_going``: a failure blocks only its dependants."""
    cfg = load(config_path)
    dag = load_dag()
    for t in targets:
        if t not in dag:
            raise PipelineError(f"unknown stage '{t}'; stages: {', '.join(dag)} (stages/pipeline.yaml)")
    order = [s for s in dag if any(s in upstream(dag, t) for t in targets)]
    try:
        kind = choose_runner(runner)
    except RunnerError as e:
        raise PipelineError(str(e)) from None
    osi = recorded_os_images() if kind == "local" else os_images()
    r = make_runner(kind, osi)
    unmet = {s: missing_needs(dag[s], kind) for s in order}
    if build and kind == "docker":
        build_images(sorted({dag[s].image for s in order if not unmet[s]}))
    config_file = write_resolved(cfg)
    run_dir = VOLUMES / cfg["run"]
    forced = set(order if force is True else (force or []))
    threads = scheduler.threads_per_stage(jobs) if jobs > 1 else 0
    results: dict[str, Status] = {}
    # fingerprints taken now, when the images were built: a file edited while the run goes on must not
    # be recorded as the environment of a stage that ran the image built before the edit
    env_ids = {n: env_id_of(r, dag[n], unmet[n]) for n in order}

    def launch(name: str) -> Status:
        stage = dag[name]
        env_id = env_ids[name]
        st = stage_status(stage, cfg, run_dir, env_id, results)
        if st.state in ("done", "skipped") and name not in forced:
            log.info("%-10s %s (cached: %s)", name, st.state, st.reason)
            results[name] = st
            return st
        if unmet[name]:
            results[name] = write_skip(stage, cfg, run_dir, env_id, kind, unmet[name])
            log.warning("%-10s skipped: %s", name, results[name].reason)
            return results[name]
        key = stage_key(stage, cfg, run_dir, env_id)
        if name not in forced and runcache.restore(run_dir, name, key):
            results[name] = Status(name, "done", f"restored from the run cache ({runcache.CACHE}/{name}/{key[:12]})")
            log.info("%-10s %s", name, results[name].reason)
            return results[name]
        runcache.stash(run_dir, name)
        if kind == "local":
            r.prepare(stage.image)
        log_path = run_dir / ".logs" / f"{name}.log"
        expect = expected_seconds(run_dir, name, cfg, stage)
        log.info("%-10s running (%s; %s)%s log: %s", name, kind, st.reason,
                 f" expected ~{_dur(expect[0])} ({expect[1]})" if expect else "", _rel(log_path))
        t0 = time.time()
        code = run_logged(r.command(stage, config_file, key, env_id, run=cfg["run"], threads=threads), log_path,
                          prefix=f"[{name}] " if jobs > 1 else "")
        if code != 0:
            raise PipelineError(f"stage {name} failed (exit {code}); log: {_rel(log_path)}")
        m = read_manifest(run_dir, name) or {}
        if m.get("cache_key") != key:
            raise PipelineError(f"stage {name} exited 0 but wrote no manifest for this run; log: {_rel(log_path)}")
        results[name] = Status(name, "skipped" if m.get("skipped") else "done",
                               m.get("skipped") or f"ran in {time.time() - t0:.1f} s")
        log.info("%-10s %s in %.1f s (total so far %s)", name, results[name].state, time.time() - t0,
                 _dur(time.time() - started))
        return results[name]

    started = time.time()
    fresh = [n for n in order if read_manifest(run_dir, n) is None and not unmet[n]]
    guesses = [e[0] for e in (expected_seconds(run_dir, n, cfg, dag[n]) for n in fresh) if e]
    if guesses:
        log.info("%d stage(s) to run from scratch, expected ~%s in all (%d of them timed before)", len(fresh),
                 _dur(sum(guesses)), len(guesses))
    try:
        with scheduler.run_lock(run_dir), _sigterm_as_interrupt():
            r.stop_orphans(cfg["run"])
            _clear_tmp(run_dir)
            out = scheduler.execute(order, {n: list(dag[n].deps) for n in order}, launch, jobs, keep_going,
                                    on_interrupt=lambda names: _stop(r, cfg["run"], run_dir, names))
    except scheduler.RunLocked as e:
        raise PipelineError(str(e)) from None
    except KeyboardInterrupt:
        raise PipelineError(f"interrupted: the running stages' containers were stopped and their partial "
                            f"outputs removed (run {cfg['run']})") from None
    rows = [results.get(n) or (Status(n, "failed", str(out.failed[n])) if n in out.failed else
                               Status(n, "blocked", f"upstream '{out.blocked[n]}' failed")) for n in order
            if n in results or n in out.failed or n in out.blocked]
    if out.failed:
        failed = ", ".join(out.failed)
        blocked = f"; blocked: {', '.join(out.blocked)}" if out.blocked else ""
        first = next(iter(out.failed.values()))
        msg = str(first) if len(out.failed) == 1 and not keep_going else f"failed: {failed}{blocked}"
        raise RunFailed(msg, rows)
    return rows


TIMINGS = REPO / "docs" / "timings"     # what `invoke readme` recorded of the README's runs (host/readme.py)


def expected_seconds(run_dir: Path, name: str, cfg: dict, stage) -> tuple[float, str] | None:
    """(seconds, where from): the wall time of this stage's last run with the same config section - its
    manifest here, else the committed record of the README's run (``invoke readme``: docs/timings/)."""
    m = read_manifest(run_dir, name) or {}
    want = cfglib.sha256_of(cfglib.section(cfg, name, stage.sections))
    if m.get("config_hash") == want and m.get("wall_s"):
        return float(m["wall_s"]), "last run with this config"
    rec = TIMINGS / f"{run_dir.name}.json"
    try:
        r = json.loads(rec.read_text()).get(name) or {}
    except (OSError, ValueError):
        return None
    if r.get("config_hash") == want and r.get("wall_s"):
        return float(r["wall_s"]), f"{rec.name} in docs/timings/, from the README's run"
    return None


def _dur(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """`kill <invoke pid>` stops the stages like Ctrl-C does (the main thread only can set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _clear_tmp(run_dir: Path) -> None:
    """Half-written outputs of earlier, killed runs (nothing else can be writing: the run is locked)."""
    tmp = run_dir / ".tmp"
    if tmp.is_dir():
        for p in tmp.iterdir():
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            log.info("removed %s (left by an interrupted run)", _rel(p))


def _stop(r, run: str, run_dir: Path, names: list[str]) -> None:
    for n in names:
        log.warning("%-10s interrupted: stopping it", n)
    r.stop(run, names)
    _clear_tmp(run_dir)


def status(config_path: str, runner: str = "auto") -> list[Status]:
    cfg = load(config_path)
    kind = "local" if runner == "local" else "docker"
    r = make_runner(kind, recorded_os_images())
    run_dir = VOLUMES / cfg["run"]
    out: dict[str, Status] = {}
    for name, stage in load_dag().items():
        env_id = env_id_of(r, stage, missing_needs(stage, kind, pull=False))
        out[name] = stage_status(stage, cfg, run_dir, env_id, out)
    return list(out.values())


def missing_needs(stage, kind: str, pull: bool = True) -> list[str]:
    """The stage's `needs` (stages/pipeline.yaml) this host cannot meet, e.g. ["image:espressif/idf:v5.3.2"]."""
    missing = []
    for need in stage.needs:
        what, _, name = need.partition(":")
        if what != "image" or not name:
            raise PipelineError(f"stages/pipeline.yaml: {stage.name}: unknown need '{need}' (use image:NAME)")
        if kind != "docker" or not img.image_available(name, pull):
            missing.append(need)
    return missing


def env_id_of(runner, stage, unmet: list[str]) -> str:
    # an unmet need is part of the environment: providing it later makes the stage stale
    return "unmet:" + ",".join(unmet) if unmet else runner.env_id(stage.image)


def write_skip(stage, cfg: dict, run_dir: Path, env_id: str, kind: str, unmet: list[str]) -> Status:
    """Record host-side that a stage could not run here, and how to provide what it needs."""
    names = [n.partition(":")[2] for n in unmet]
    how = "; ".join(f"`docker pull {n}` (or `docker load` it) on this host" for n in names)
    if kind != "docker":
        how = "a Docker engine with " + ", ".join(names)
    msg = f"needs {', '.join(names)}; provide it: {how}, then `invoke stage {stage.name}`"
    section = cfglib.section(cfg, stage.name, stage.sections)
    with AtomicStageDir(run_dir, stage.name) as out:
        write_json(out / MANIFEST, build_manifest(
            stage.name, cfg, section, stage_key(stage, cfg, run_dir, env_id),
            {d: manifest_hash(run_dir, d) for d in stage.deps}, {"id": env_id, "runner": kind}, time.time(), 0.0,
            out, {"skipped": msg}))
    return Status(stage.name, "skipped", msg)


def clean(run_name: str | None, everything: bool = False, cache_only: bool = False) -> list[Path]:
    """Remove one run's outputs (or all runs, and the local venvs with ``everything``); ``cache_only``:
    only the run cache (outputs of earlier config values, kept by key)."""
    if cache_only:
        runs = [VOLUMES / run_name] if run_name else [p for p in VOLUMES.iterdir() if p.is_dir()]
        return [p for p in (runcache.clear(d) for d in runs) if p]
    gone = []
    if run_name:
        targets = [VOLUMES / run_name]
    else:
        targets = [p for p in VOLUMES.iterdir() if p.is_dir() and not p.name.startswith(".")
                   and p.name != "wheelhouse"]
        if everything:
            targets += [VOLUMES / ".venvs", OS_RECORD]
    for p in targets:
        if p.is_dir():
            shutil.rmtree(p)
            gone.append(p)
        elif p.exists():
            p.unlink()
            gone.append(p)
    return gone


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(cfglib.REPO))
    except ValueError:
        return str(p)

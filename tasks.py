"""Invoke tasks: the user-facing verbs of the toolchain.

    invoke all [--config configs/demo.yaml]       build images, run every stage (cached)
               [--jobs N] [--keep-going]          N ready stages at once; a failure blocks only its dependants
    invoke stage dataset [--force]                one stage (and what it needs upstream)
    invoke status                                 done / stale / missing, and why
    invoke images [--stage NAME] [--force]        build stage images
    invoke clean [--run NAME] [--all] [--cache]   remove outputs (or only the run cache)
    invoke test                                   host tests, stage tests in their images, smoke run
    invoke bench                                  timing figures (dataset stage, no-op run, rebuild)
    invoke readme [--config configs/demo.yaml]    put the run's results table + plot into README.md

The logic lives in host/ (host-side orchestration, in no image); this file only parses flags and prints.
"""
from __future__ import annotations

import logging
import os
import sys
import time

from invoke import task

from host import driver, testing
from shared.dag import load_dag

DEFAULT_CONFIG = "configs/demo.yaml"
logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(name)s] %(message)s", datefmt="%H:%M:%S")


def _fail(e: Exception):
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def _print_status(rows):
    for s in rows:
        print(f"  {s.stage:<10} {s.state:<8} {s.reason}")


@task(help={"stage": "image of this stage only (default: every stage's)", "force": "rebuild even if up to date",
            "refresh_base": "look for the OS base images again (registry or local Debian)"})
def images(c, stage=None, force=False, refresh_base=False):
    """Build the stage images (parents first; cached by content fingerprint)."""
    dag = load_dag()
    try:
        if stage and stage not in dag:
            raise driver.PipelineError(f"unknown stage '{stage}'; stages: {', '.join(dag)}")
        names = [dag[stage].image] if stage else sorted({s.image for s in dag.values()})
        for name, fp in driver.build_images(names, force, refresh_base).items():
            print(f"  jmmc/{name}:local  {fp}")
    except driver.PipelineError as e:
        _fail(e)


def _verbose(on: bool) -> None:
    if on:   # the traceback of an expected error is shown, not only kept in the stage log
        os.environ["JMMC_VERBOSE"] = "1"


@task(help={"name": "stage to run", "config": "run config", "force": "rerun it even if cached",
            "runner": "auto | docker | local", "no_build": "do not build images first",
            "verbose": "show tracebacks of expected errors (always in <run>/.logs/<stage>.log)"})
def stage(c, name, config=DEFAULT_CONFIG, force=False, runner="auto", no_build=False, verbose=False):
    """Run one stage (and any upstream stage that is not done) in its own image."""
    _verbose(verbose)
    try:
        rows = driver.run([name], config, runner, [name] if force else False, build=not no_build)
    except driver.PipelineError as e:
        _fail_with_rows(e)
    _print_status(rows)


def _fail_with_rows(e: Exception):
    if isinstance(e, driver.RunFailed):
        _print_status(e.rows)
    _fail(e)


@task(name="all", help={"config": "run config", "force": "rerun every stage", "runner": "auto | docker | local",
                        "verbose": "show tracebacks of expected errors (always in <run>/.logs/<stage>.log)",
                        "jobs": "run up to N ready stages at once (the cores split between them)",
                        "keep_going": "a failed stage blocks only its dependants; the rest of the DAG still runs"})
def all_(c, config=DEFAULT_CONFIG, force=False, runner="auto", verbose=False, jobs=1, keep_going=False):
    """Build images and run the whole chain in dependency order (cached stages are skipped)."""
    _verbose(verbose)
    t0 = time.time()
    try:
        rows = driver.run(list(load_dag()), config, runner, force, jobs=int(jobs), keep_going=keep_going)
    except driver.PipelineError as e:
        _fail_with_rows(e)
    _print_status(rows)
    print(f"all stages ready in {time.time() - t0:.1f} s; outputs in volumes/{driver.load(config)['run']}/")


@task(help={"config": "run config", "runner": "auto | docker | local"})
def status(c, config=DEFAULT_CONFIG, runner="auto"):
    """Which stages are done, stale or missing for a config, and why."""
    try:
        rows = driver.status(config, runner)
    except driver.PipelineError as e:
        _fail(e)
    print(f"run '{driver.load(config)['run']}' ({config}):")
    _print_status(rows)


@task(help={"run": "run name to remove (default: every run)", "all": "also local venvs and the base-image choice",
            "cache": "only the run cache (outputs of earlier config values, kept by cache key)"})
def clean(c, run=None, all=False, cache=False):  # noqa: A002 - invoke flag name
    """Remove outputs under volumes/ (the wheelhouse is kept)."""
    for p in driver.clean(run, all, cache_only=cache):
        print(f"  removed {p}")


@task(help={"host_only": "only the host unit tests (no engine needed)", "no_e2e": "skip the smoke run",
            "runner": "auto | docker | local", "no_ray": "skip the Ray check after the smoke run"})
def test(c, host_only=False, no_e2e=False, runner="auto", no_ray=False):
    """The project's tests: host units, each stage's tests in its image, end-to-end smoke run, Ray check."""
    ok = testing.run_all(host_only=host_only, e2e=not no_e2e, runner=runner, ray=not no_ray)
    sys.exit(0 if ok else 1)


@task(help={"config": "config for the dataset timing (default demo)", "runner": "auto | docker | local",
            "noop_config": "config whose whole chain is timed as a warm no-op (default smoke)"})
def bench(c, config=DEFAULT_CONFIG, runner="auto", noop_config="configs/smoke.yaml"):
    """Print timing figures: dataset stage, warm no-op `all`, warm image rebuild."""
    from host import bench as benchmod
    try:
        benchmod.main(config, runner, noop_config)
    except driver.PipelineError as e:
        _fail(e)


@task(help={"config": "run config whose report goes into README.md (default demo)"})
def readme(c, config=DEFAULT_CONFIG):
    """Copy the run's results table (report stage's README_snippet.md) and plot into README.md."""
    from host import readme as readmemod
    try:
        run = driver.load(config)["run"]
        for p in readmemod.update(run, driver.VOLUMES):
            print(f"wrote {p.relative_to(readmemod.REPO)}")
    except (driver.PipelineError, readmemod.ReadmeError) as e:
        _fail(e)


@task(help={"action": "up | down", "workers": "Ray workers to start (up)"})
def cluster(c, action, workers=2):
    """A local Ray cluster for `executor: {kind: ray}`: a head and N workers from the quantize image
    on an internal network (compose.ray.yaml; docs/ray.md)."""
    from host import cluster as ray_cluster
    if action not in ("up", "down"):
        _fail(ValueError(f"invoke cluster: action must be up or down, not {action!r}"))
    try:
        if action == "down":
            ray_cluster.down()
            return
        ray_cluster.up(int(workers))
    except (ray_cluster.ClusterError, driver.PipelineError) as e:
        _fail(e)
    print(f"ray cluster up: head ray://ray-head:10001 (network jmmc_ray), {workers} worker(s); "
          "run with `executor: {kind: ray}` in the config; `invoke cluster down` stops it")

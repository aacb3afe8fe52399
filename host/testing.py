"""`invoke test`: host unit tests, each image's tests inside that image, then a smoke run and the
Ray check on it (host/raycheck.py: the quantize grid on a 2-worker local Ray cluster).

Each pytest writes a JUnit XML under volumes/.test-reports/; the last line
printed sums them all ("N passed, N failed, N skipped").
"""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

from shared.config import REPO
from pathlib import Path

from host import driver, raycheck
from shared.dag import load_dag
from host.images import compose_cmd, load_images
from host.runners import VOLUMES, LocalRunner, RunnerError, choose_runner

log = logging.getLogger("test")
REPORTS = VOLUMES / ".test-reports"
SMOKE = "configs/smoke.yaml"


def _pytest(cmd: list[str], name: str) -> bool:
    log.info("tests: %s", name)
    return subprocess.run(cmd, cwd=REPO).returncode == 0


def host_tests() -> bool:
    return _pytest([sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider",
                    f"--junitxml={REPORTS / 'host.xml'}"], "host (tests/)")


def image_tests(kind: str) -> bool:
    """Every image's `tests:` paths, in that image (docker) or its venv (local)."""
    images, dag = load_images(), load_dag()
    service = {}
    for s in dag.values():
        service.setdefault(s.image, s)
    ok = True
    for image, spec in images.items():
        paths = spec.get("tests")
        if not paths:
            continue
        if image not in service:
            log.warning("image %s has tests but no stage runs in it; skipped", image)
            continue
        if kind == "docker":
            cmd = compose_cmd() + ["run", "--rm", "-T", service[image].name, "python", "-m", "pytest", *paths,
                                   "-q", "-p", "no:cacheprovider", f"--junitxml=/work/.test-reports/{image}.xml"]
        else:
            r = LocalRunner()
            r.prepare(image)
            cmd = [str(r.venv_dir(image) / "bin" / "python"), "-m", "pytest", *paths, "-q", "-p",
                   "no:cacheprovider", f"--junitxml={REPORTS / (image + '.xml')}"]
        ok &= _pytest(cmd, f"{image} image ({', '.join(paths)})")
    return ok


def smoke_run(runner: str) -> tuple[bool, str]:
    """Fresh smoke run of the whole chain, then a second run that must be fully cached."""
    run_name = driver.load(SMOKE)["run"]
    driver.clean(run_name)
    stages = list(load_dag())
    try:
        t0 = time.time()
        first = driver.run(stages, SMOKE, runner, build=False)
        t1 = time.time()
        second = driver.run(stages, SMOKE, runner, build=False)
        t2 = time.time()
    except driver.PipelineError as e:
        return False, f"smoke run failed: {e}"
    not_done = [s.stage for s in first if s.state not in ("done", "skipped")]
    rerun = [s.stage for s in second if s.reason.startswith("ran in")]
    if not_done or rerun:
        return False, f"smoke run: not done {not_done}, re-ran when cached {rerun}"
    problems = records_problems(VOLUMES / run_name, stages)
    if problems:
        return False, "smoke run: artifact records: " + "; ".join(problems)
    return True, f"smoke run: {len(first)} stage(s) in {t1 - t0:.1f} s, cached rerun {t2 - t1:.1f} s, records checked"


def records_problems(run_dir: Path, stages: list[str]) -> list[str]:
    """Every stage's artifact records against the schema the report reads (shared.artifacts), and every
    ONNX record a row of the report's results.json (the report reads records and nothing else)."""
    from shared.artifacts import ArtifactError, check_manifest
    problems, onnx = [], set()
    for name in stages:
        path = run_dir / name / "manifest.json"
        if not path.exists():
            continue
        m = json.loads(path.read_text())
        try:
            check_manifest(m, path.parent)
        except ArtifactError as e:
            problems.append(f"{path}: {e}")
        onnx |= {f"{name}/{r['file']}" for r in m.get("artifacts") or [] if r.get("format") == "onnx"}
    results = run_dir / "report" / "results.json"
    if results.exists():
        rows = {r["artifact"] for r in json.loads(results.read_text()).get("rows", [])}
        missing = sorted(onnx - rows)
        if missing:
            problems.append(f"records the report did not show: {', '.join(missing[:5])}")
    return problems


def summarize() -> tuple[int, int, int]:
    passed = failed = skipped = 0
    for f in sorted(REPORTS.glob("*.xml")):
        for suite in ET.parse(f).getroot().iter("testsuite"):
            n, fl, er, sk = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
            passed += n - fl - er - sk
            failed += fl + er
            skipped += sk
    return passed, failed, skipped


def run_all(host_only: bool = False, e2e: bool = True, runner: str = "auto", ray: bool = True) -> bool:
    shutil.rmtree(REPORTS, ignore_errors=True)
    REPORTS.mkdir(parents=True)
    ok = host_tests()
    extra_passed = extra_failed = 0
    if not host_only:
        try:
            kind = choose_runner(runner)
        except RunnerError as e:
            print(f"error: {e}", file=sys.stderr)
            return False
        if kind == "docker":
            try:
                driver.build_images(sorted({s.image for s in load_dag().values()}))
            except driver.PipelineError as e:
                print(f"error: {e}", file=sys.stderr)
                return False
        ok &= image_tests(kind)
        if e2e:
            good, msg = smoke_run(kind)
            print(msg)
            checks = [good]
            if good and ray:
                good, msg = raycheck.ray_check(kind)
                print(msg)
                checks.append(good)
            ok &= all(checks)
            extra_passed, extra_failed = sum(checks), len(checks) - sum(checks)
    p, f, s = summarize()
    print(f"test: {p + extra_passed} passed, {f + extra_failed} failed, {s} skipped")
    return ok and f == 0

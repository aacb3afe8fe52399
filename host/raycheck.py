"""`invoke test`'s Ray check (issue 19), after the smoke run: the smoke quantize grid run again on a
2-worker local Ray cluster (configs/smoke-ray.yaml, ``executor: {kind: ray}``) must give the same
result rows as the local executor did, while the worker running the first cell is killed mid-cell:
Ray runs that cell again on the other worker and the stage completes.

The local rows are the smoke run's own ``quantize/metrics.json``; the Ray run replaces that stage
output with rows that must be equal field by field (host/rows.py), so the smoke run's downstream
outputs stay valid either way.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time

from host import cluster, driver
from host.rows import differences
from host.runners import VOLUMES

log = logging.getLogger("test")
CONFIG = "configs/smoke-ray.yaml"
WORKERS = 2


class _Killer(threading.Thread):
    """Waits for the first cell's attempt line (shared/executor.py) and kills the worker that wrote it."""

    def __init__(self, run_dir, workers: dict[str, str]):
        super().__init__(daemon=True)
        self.run_dir, self.workers, self.killed, self.stop = run_dir, workers, None, threading.Event()

    def run(self):
        while not self.stop.is_set() and self.killed is None:
            for marker in self.run_dir.rglob("*.attempts"):
                lines = marker.read_text().split("\n")
                host = lines[0].split(" ")[0] if lines and lines[0] else ""
                if host in self.workers:
                    subprocess.run(["docker", "kill", self.workers[host]], capture_output=True)
                    self.killed = f"{host} during {marker.parent.name}/{marker.stem}"
                    log.info("ray check: killed worker %s", self.killed)
                    return
            time.sleep(0.2)


def ray_check(kind: str) -> tuple[bool, str]:
    if kind != "docker":
        return True, "ray check skipped: needs the docker runner (the cluster runs the quantize image with Compose)"
    run_name = driver.load(CONFIG)["run"]
    run_dir = VOLUMES / run_name
    local = json.loads((run_dir / "quantize" / "metrics.json").read_text())
    t0 = time.time()
    try:
        cluster.up(WORKERS)
        workers = cluster.worker_containers()
        if len(workers) != WORKERS:
            return False, f"ray check: {len(workers)} worker(s) running, wanted {WORKERS}"
        killer = _Killer(run_dir, workers)
        killer.start()
        try:
            driver.run(["quantize"], CONFIG, kind, force=["quantize"], build=False)
        finally:
            killer.stop.set()
    except (driver.PipelineError, cluster.ClusterError) as e:
        return False, f"ray check failed: {e}"
    finally:
        try:
            cluster.down()
        finally:
            os.environ.pop("JMMC_RAY", None)
    ray = json.loads((run_dir / "quantize" / "metrics.json").read_text())
    diffs = differences(local["rows"], ray["rows"])
    kinds = {c: e["kind"] for c, e in ray["executor"].items()}
    retried = [r for e in ray["executor"].values() for r in e["retried"]]
    problems = ([f"{len(diffs)} row difference(s) local vs ray, first: {diffs[0]}"] if diffs else []) + \
        ([f"cells did not run on ray: {kinds}"] if set(kinds.values()) != {"ray"} else []) + \
        (["no worker was killed mid-cell (the cells finished first?)"] if killer.killed is None else []) + \
        (["the killed worker's cell was not run again"] if killer.killed and not retried else [])
    if problems:
        return False, "ray check: " + "; ".join(problems)
    return True, (f"ray check: {len(ray['rows'])} quantize rows on {WORKERS} Ray workers equal to the local "
                  f"executor's; killed {killer.killed}, retried {', '.join(retried)}; {time.time() - t0:.0f} s")

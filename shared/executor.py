"""Where the independent cells of a grid run: here, one after the other (``local``), or as Ray tasks on
a cluster (``ray``).  The run config's ``executor`` section (shared/schema.yaml) says which; it is in
no cache key, because the results do not depend on it.

``run_cells(fn, jobs, spec, log, attempts)`` returns ``[fn(job) for job in jobs]``, in order:

* ``fn`` is a module-level function (Ray pickles it by reference: the workers import it from their
  own image, started from the stage's image: compose.ray.yaml, docs/ray.md);
* a job is a small picklable description; ``fn`` reads its inputs from and writes its files to the
  shared volume, mounted at the same path in the stage container and in every worker, and returns
  what the stage gathers (rows, records) - the stage writes its outputs and manifest as in a local run;
* every attempt of cell ``i`` appends a line to ``attempts/<i>.attempts`` (host, pid): a cell whose
  worker was lost is run again, at most ``retries`` times (Ray's ``max_retries``), and the stage's
  log and metrics say which cells ran more than once (:func:`attempt_counts`);
* before a cell is sent, each worker's code (:func:`code_digest` of the stage's package and
  ``shared``) is compared with the stage's own: a cluster started from an older image is refused
  with one line saying how to restart it.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import socket
import time
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urlparse

from shared.errors import ExpectedError

KINDS = ("local", "ray")


class ExecutorError(ExpectedError, RuntimeError):
    pass


def code_digest(package: str) -> str:
    """sha256 over the Python files of ``package`` and ``shared`` (what a worker must run the same of)."""
    h = hashlib.sha256()
    for pkg in (package, "shared"):
        root = Path(importlib.import_module(pkg).__file__).parent
        for p in sorted(root.rglob("*.py")):
            if "tests" not in p.relative_to(root).parts:
                h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def _attempt(fn: Callable, job, marker: str | None):
    if marker:
        with open(marker, "a") as f:
            f.write(f"{socket.gethostname()} {os.getpid()} {time.time():.1f}\n")
    return fn(job)


def attempt_counts(attempts: Path | None, n: int) -> list[int]:
    """How many times each of ``n`` cells was started (1 = no retry)."""
    if attempts is None:
        return [1] * n
    return [len((attempts / f"{i}.attempts").read_text().splitlines()) if (attempts / f"{i}.attempts").is_file()
            else 0 for i in range(n)]


def run_cells(fn: Callable, jobs: Sequence, spec: dict, log, attempts: Path | None = None,
              package: str | None = None) -> list:
    """``[fn(job) for job in jobs]`` on the executor ``spec`` (the config's ``executor`` section)."""
    if spec["kind"] not in KINDS:
        raise ExecutorError(f"executor.kind: {spec['kind']!r} (known: {', '.join(KINDS)})")
    if attempts is not None:
        attempts.mkdir(parents=True, exist_ok=True)
    markers = [str(attempts / f"{i}.attempts") if attempts is not None else None for i in range(len(jobs))]
    if spec["kind"] == "local" or not jobs:
        return [_attempt(fn, job, m) for job, m in zip(jobs, markers)]
    return _on_ray(fn, jobs, markers, spec, log, package or fn.__module__.rsplit(".", 1)[0])


def _reachable(address: str) -> None:
    u = urlparse(address)
    if u.scheme != "ray" or not u.hostname:
        raise ExecutorError(f"executor.address: {address!r} is not a Ray Client address (ray://HOST:PORT)")
    try:
        socket.create_connection((u.hostname, u.port or 10001), timeout=5).close()
    except OSError as e:
        raise ExecutorError(f"executor.address {address}: no Ray cluster answers ({e}); start the local one with "
                            "`invoke cluster up` or point executor.address at yours (docs/ray.md)") from None


def _digest_task(package: str) -> str:
    return code_digest(package)


def _check_workers(ray, package: str) -> list[str]:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]
    if not nodes:
        raise ExecutorError("executor: the Ray cluster has no worker with a CPU (`invoke cluster up --workers 2`)")
    task = ray.remote(num_cpus=0)(_digest_task)
    theirs = ray.get([task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                      .remote(package) for n in nodes])
    mine = code_digest(package)
    stale = [n["NodeManagerAddress"] for n, d in zip(nodes, theirs) if d != mine]
    if stale:
        raise ExecutorError(f"executor: Ray worker(s) {', '.join(stale)} run other code than this stage ({package} + "
                            f"shared digest {mine}): restart them from the current image (`invoke cluster up`)")
    return [n["NodeManagerAddress"] for n in nodes]


def _on_ray(fn, jobs, markers, spec, log, package: str) -> list:
    _reachable(spec["address"])
    import ray
    from ray.exceptions import RayTaskError
    ray.init(address=spec["address"], logging_level="WARNING", log_to_driver=False)
    try:
        workers = _check_workers(ray, package)
        log.info("executor ray (%s): %d cells on %d workers (%s), %d retries each", spec["address"], len(jobs),
                 len(workers), ", ".join(workers), spec["retries"])
        task = ray.remote(num_cpus=spec["cpus_per_cell"], max_retries=spec["retries"], retry_exceptions=False)(_attempt)
        refs = [task.remote(fn, job, m) for job, m in zip(jobs, markers)]
        index = {r: i for i, r in enumerate(refs)}
        out, pending, t0 = [None] * len(refs), list(refs), time.time()
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            i = index[done[0]]
            try:
                out[i] = ray.get(done[0])
            except RayTaskError as e:         # the cell's own error: as if it had run here
                raise e.as_instanceof_cause() from None
            except ray.exceptions.RayError as e:
                raise ExecutorError(f"executor: cell {i} failed after {spec['retries']} retries "
                                    f"(executor.retries): {type(e).__name__}: {str(e).splitlines()[0]}") from None
            log.info("executor: cell %d/%d done (%d of %d, %.1f s)", i + 1, len(refs), len(refs) - len(pending),
                     len(refs), time.time() - t0)
        return out
    finally:
        ray.shutdown()

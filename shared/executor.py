"""Where the independent cells of a grid run: on this machine (``local``: in this process, or in
``workers`` spawned processes side by side), or as Ray tasks on a cluster (``ray``).  The run
config's ``executor`` section (shared/schema.yaml) says which; it is in no cache key, because the
results do not depend on it: every cell computes with ``cpus_per_cell`` threads (torch, OpenMP and
ONNX Runtime: :func:`cell_threads`) wherever it runs, since float kernels sum in another order with
another thread count.

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

import contextlib
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


THREAD_VARS = ("JMMC_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")   # ONNX Runtime (shared/ort_runtime.py), BLAS


@contextlib.contextmanager
def cell_threads(n: int):
    """Run the block with ``n`` threads in torch and ONNX Runtime (what a cell computes with on any
    executor); the previous settings come back afterwards."""
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    os.environ.update({k: str(n) for k in THREAD_VARS})
    torch = _torch()
    before = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if torch:
            torch.set_num_threads(before)


def _torch():
    try:
        import torch
    except ImportError:   # a stage without torch: the environment variables are all there is
        return None
    return torch


def _attempt(fn: Callable, job, marker: str | None, threads: int = 1):
    from shared.allocator import keep_freed_memory
    keep_freed_memory()   # in a spawned process or a Ray worker as in the stage (shared/allocator.py)
    if marker:
        with open(marker, "a") as f:
            f.write(f"{socket.gethostname()} {os.getpid()} {time.time():.1f}\n")
    with cell_threads(threads):
        return fn(job)


def local_workers(spec: dict) -> int:
    """How many cells run at once locally: ``workers``, or (0) the stage's cores / ``cpus_per_cell``."""
    if spec.get("workers"):
        return spec["workers"]
    cores = int(os.environ.get("JMMC_THREADS") or 0) or len(os.sched_getaffinity(0))
    return max(1, cores // spec["cpus_per_cell"])


def local(spec: dict, log=None) -> dict:
    """``spec`` on this machine (``kind: local``): for stages whose cells need their own image, since
    the Ray cluster runs the quantize image (compose.ray.yaml)."""
    if spec["kind"] != "local" and log is not None:
        log.info("executor %s: this stage's cells run locally (the Ray cluster runs the quantize image)", spec["kind"])
    return {**spec, "kind": "local"}


def in_process(spec: dict, n_jobs: int) -> bool:
    """Whether ``n_jobs`` cells run in the stage's own process (what they return need not cross processes)."""
    return spec["kind"] == "local" and min(local_workers(spec), n_jobs) <= 1


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
    threads = spec["cpus_per_cell"]
    if not jobs or in_process(spec, len(jobs)):
        return [_attempt(fn, job, m, threads) for job, m in zip(jobs, markers)]
    if spec["kind"] == "local":
        return _in_processes(fn, jobs, markers, threads, local_workers(spec), log)
    return _on_ray(fn, jobs, markers, spec, log, package or fn.__module__.rsplit(".", 1)[0])


def _init_worker(level: int, label: str) -> None:
    """A spawned cell's logging: the stage's handler on ``stages`` (shared.stage.setup_logging: mmcv
    turns root handlers down to ERROR), its lines tagged ``[<stage> cell <pid>]``."""
    import logging

    from shared.stage import setup_logging
    setup_logging(f"{label} cell {os.getpid()}")
    logging.getLogger("stages").setLevel(level)


def _in_processes(fn, jobs, markers, threads: int, workers: int, log) -> list:
    """The cells in ``workers`` spawned processes on this machine (spawn: no forked torch thread pools)."""
    import logging
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    workers = min(workers, len(jobs))
    if log:
        log.info("executor local: %d cells in %d processes, %d thread(s) each", len(jobs), workers, threads)
    label = log.name.rsplit(".", 1)[-1] if log else "stage"
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(log.getEffectiveLevel() if log else logging.WARNING, label)) as pool:
        return list(pool.map(_attempt, [fn] * len(jobs), jobs, markers, [threads] * len(jobs)))


REACH_WAIT_S = 60.0   # a just-started head's Ray Client port opens seconds after its container starts


def _reachable(address: str, poll_s: float = 2.0) -> None:
    """The head's Ray Client port answers, waited for up to ``REACH_WAIT_S`` (CI once connected 3 s after
    ``invoke cluster up`` and was refused)."""
    u = urlparse(address)
    if u.scheme != "ray" or not u.hostname:
        raise ExecutorError(f"executor.address: {address!r} is not a Ray Client address (ray://HOST:PORT)")
    deadline = time.time() + REACH_WAIT_S
    while True:
        try:
            socket.create_connection((u.hostname, u.port or 10001), timeout=5).close()
            return
        except OSError as e:
            if time.time() >= deadline:
                raise ExecutorError(f"executor.address {address}: no Ray cluster answers ({e}; waited "
                                    f"{REACH_WAIT_S:.0f} s); start the local one with `invoke cluster up` or point "
                                    "executor.address at yours (docs/ray.md)") from None
            time.sleep(poll_s)


def _digest_task(package: str) -> str:
    return code_digest(package)


def _cpu_nodes(ray, log=None, wait_s: float = 60.0, poll_s: float = 2.0) -> list[dict]:
    """The alive nodes with a CPU, waited for up to ``wait_s`` (a just-started cluster's workers
    register with the head a few seconds after it answers)."""
    t0 = time.time()
    while True:
        nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]
        if nodes or time.time() - t0 >= wait_s:
            return nodes
        if log and time.time() - t0 < poll_s:
            log.info("executor: waiting up to %.0f s for the Ray workers to join the head", wait_s)
        time.sleep(poll_s)


def _check_workers(ray, package: str, log=None, wait_s: float = 60.0) -> list[str]:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    nodes = _cpu_nodes(ray, log, wait_s)
    if not nodes:
        raise ExecutorError(f"executor: the Ray cluster has no worker with a CPU after {wait_s:.0f} s "
                            "(`invoke cluster up --workers 2`)")
    task = ray.remote(num_cpus=0)(_digest_task)
    refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(package)
            for n in nodes]
    answered = _answers(ray, nodes, refs, log)
    if not answered:
        raise ExecutorError("executor: no Ray worker answered the code check (every listed worker was gone); "
                            "`invoke cluster up --workers 2`")
    mine = code_digest(package)
    stale = [n["NodeManagerAddress"] for n, d in answered if d != mine]
    if stale:
        raise ExecutorError(f"executor: Ray worker(s) {', '.join(stale)} run other code than this stage ({package} + "
                            f"shared digest {mine}): restart them from the current image (`invoke cluster up`)")
    return [n["NodeManagerAddress"] for n, _ in answered]


def _answers(ray, nodes: list[dict], refs: list, log=None) -> list[tuple[dict, str]]:
    """(node, code digest) of every node whose digest task came back. A node that died after ``ray.nodes()``
    listed it is left out with a warning: Ray reports a killed worker alive for some seconds, and a task
    pinned to it fails with TaskUnschedulableError (the Ray check met it when the stage's second set of cells
    started right after the killed worker's cell was retried)."""
    out = []
    for n, r in zip(nodes, refs):
        try:
            out.append((n, ray.get(r)))
        except ray.exceptions.RayError as e:
            if log:
                log.warning("executor: Ray worker %s did not answer the code check (%s: %s); left out",
                            n.get("NodeManagerAddress"), type(e).__name__, str(e).splitlines()[0][:120])
    return out


def _connect(ray, address: str, log, tries: int = 6, wait_s: float = 10.0) -> None:
    """``ray.init`` over Ray Client, tried again while a just-started head cannot yet start the session's
    client server (Ray answers ConnectionAbortedError "Starting Ray client server failed" then)."""
    for i in range(tries):
        try:
            ray.init(address=address, logging_level="WARNING", log_to_driver=False)
            return
        except (ConnectionAbortedError, ConnectionError) as e:
            if i == tries - 1:
                raise ExecutorError(f"executor.address {address}: the Ray head did not accept a client after "
                                    f"{tries} tries ({str(e).splitlines()[0]})") from None
            if log:
                log.warning("executor: Ray client connection refused (%s); again in %.0f s",
                            str(e).splitlines()[0], wait_s)
            ray.shutdown()
            time.sleep(wait_s)


def _on_ray(fn, jobs, markers, spec, log, package: str) -> list:
    _reachable(spec["address"])
    import ray
    from ray.exceptions import RayTaskError
    _connect(ray, spec["address"], log)
    try:
        workers = _check_workers(ray, package, log)
        log.info("executor ray (%s): %d cells on %d workers (%s), %d retries each", spec["address"], len(jobs),
                 len(workers), ", ".join(workers), spec["retries"])
        task = ray.remote(num_cpus=spec["cpus_per_cell"], max_retries=spec["retries"], retry_exceptions=False)(_attempt)
        refs = [task.remote(fn, job, m, spec["cpus_per_cell"]) for job, m in zip(jobs, markers)]
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

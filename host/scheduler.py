"""Running a DAG of stages: one run at a time, ready stages side by side, failures that block only
their dependants, and containers that stop when the driver does.

* ``run_lock(run_dir)``: an exclusive lock on ``<run>/.lock`` holding the owner's pid; a second
  ``invoke`` on the same run gets "run X is locked by pid N" instead of racing the first.
* ``execute(names, deps, launch, jobs, keep_going)``: ``launch(name)`` runs one stage (blocking)
  once every dependency has finished; up to ``jobs`` at once, in DAG order among the ready ones.
  A failure stops the scheduling of new stages (or, with ``keep_going``, only of its dependants,
  which are reported as blocked); stages already running finish.
* ``threads_per_stage(jobs)``: the cores split between concurrent stages (``JMMC_THREADS`` and
  ``OMP_NUM_THREADS`` in the stage's environment).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


class RunLocked(RuntimeError):
    pass


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """Hold ``<run>/.lock`` for the duration; RunLocked names the pid that holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / ".lock"
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            pid = fh.read().strip() or "?"
            raise RunLocked(f"run {run_dir.name} is locked by pid {pid} (another `invoke` is running it; "
                            f"wait for it or stop it)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fh.close()


def host_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def threads_per_stage(jobs: int) -> int:
    return max(1, host_cores() // max(1, jobs))


@dataclass
class Outcome:
    done: dict[str, object] = field(default_factory=dict)      # name -> launch()'s result
    failed: dict[str, BaseException] = field(default_factory=dict)
    blocked: dict[str, str] = field(default_factory=dict)      # name -> the failed stage upstream
    order: list[str] = field(default_factory=list)             # names in the order they started


def execute(names: list[str], deps: dict[str, list[str]], launch: Callable[[str], object], jobs: int = 1,
            keep_going: bool = False, on_interrupt: Callable[[list[str]], None] = lambda running: None) -> Outcome:
    """Run ``launch`` for each of ``names`` (in DAG order) once its deps (those among ``names``) are done.

    Interrupted (Ctrl-C, or SIGTERM turned into KeyboardInterrupt by the caller), ``on_interrupt``
    gets the stages still running (to stop their containers) before the threads are joined."""
    jobs = max(1, jobs)
    out, pending, running = Outcome(), list(names), {}
    stop = False

    def ready(n):
        return all(d in out.done for d in deps.get(n, ()) if d in names)

    def block_dead():
        for n in list(pending):
            culprit = next((d for d in deps.get(n, ()) if d in out.failed or d in out.blocked), None)
            if culprit or (stop and not running):
                out.blocked[n] = out.blocked.get(culprit, culprit) if culprit else next(iter(out.failed))
                pending.remove(n)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        try:
            while pending or running:
                block_dead()
                for n in [n for n in pending if ready(n)][:0 if stop else jobs - len(running)]:
                    pending.remove(n)
                    out.order.append(n)
                    running[pool.submit(launch, n)] = n
                if not running:
                    if pending:   # cannot happen with a DAG whose deps are listed before their stage
                        raise RuntimeError(f"no stage can start: {pending}")
                    continue
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for f in finished:
                    n = running.pop(f)
                    try:
                        out.done[n] = f.result()
                    except BaseException as e:  # noqa: BLE001 - recorded; the caller reports it
                        out.failed[n] = e
                        stop = stop or isinstance(e, KeyboardInterrupt) or not keep_going
        except BaseException:
            on_interrupt(sorted(running.values()))
            raise
    return out

"""Host latency in ONNX Runtime (CPU): per artifact, and the chain serial vs parallel.

* ``session_call`` / ``time_rounds``: one ``InferenceSession`` per file and thread setting (``intra_op_num_threads``;
  0 = every core this process may use), ``warmup`` untimed runs, then ``runs`` timed ones and
  at least ``min_seconds`` of them (``timed``) on one fixed input, in ``rounds`` passes over every
  file (the report times all files and both runtimes that way); median, p90 and mean in milliseconds.
* ``chain_fps``: the chain as separate sessions (enhancer, denoiser, detector), frames
  pushed through it (a) serially, one frame after the other through every model in one
  thread, each session with 1 thread and with every core (the faster is reported), and (b) in parallel, one thread per model with
  a bounded queue between two models (a software pipeline over frames, the host analogue
  of running the models concurrently on the Hailo-8), the cores split between the
  sessions; the speed-up is parallel over the best serial.  ORT releases the GIL while it runs, so the models overlap for real.  Both
  give frames/s; the outputs of the two runs are compared.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path

import numpy as np

from shared.timing import timed

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
           "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


def host_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def session(path: Path, threads: int = 0):
    from shared.ort_runtime import open_session     # "exact": the kernels accuracy is measured with
    return open_session(path, "exact", threads if threads > 0 else host_cores())


def probe_input(sess, input_range: float = 1.0, seed: int = 0) -> dict:
    """A fixed random input of the session's shape/dtype (symbolic dims = 1)."""
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    dtype = _DTYPES.get(inp.type, np.float32)
    x = np.random.default_rng(seed).random(shape, dtype=np.float32) * np.float32(input_range)
    return {inp.name: x.astype(dtype)}


def thread_label(n: int) -> str:
    return "all" if n <= 0 else str(n)


def time_rounds(calls: dict, warmup: int, runs: int, min_seconds: float, rounds: int, progress=None) -> dict:
    """{key: {median_ms, p90_ms, mean_ms, runs, rounds_ms}}: every call of ``calls`` ({key: fn()}) timed in
    ``rounds`` passes over all of them, each pass ``timed`` with ``runs / rounds`` runs and ``min_seconds / rounds``
    (warm-up in full on the first pass, one call after); a call's ``median_ms`` is its fastest pass's median
    (``p90_ms`` that pass's p90), every pass's median is kept in ``rounds_ms``.

    Why the fastest pass: on this 2-vCPU machine a 2-thread ONNX Runtime session of the demo's pruned
    pipeline read 3.1 ms in one pass and 9.1 ms in the next two, for the same session object, while other
    files read the same in every pass (with 1 thread every pass agrees within ~5 %). Interference only adds
    time, so the fastest pass is the file's own speed; files timed one after another, or a median over
    passes, let such a spell decide the ratios between files. ``progress(n)``: called after each timing."""
    per: dict = {k: [] for k in calls}
    for r in range(rounds):
        for k, call in calls.items():
            per[k].append(timed(call, warmup if r == 0 else 1, max(1, -(-runs // rounds)), min_seconds / rounds))
            if progress:
                progress(1)
    out = {}
    for k, rs in per.items():
        best = min(rs, key=lambda x: x["median_ms"])
        out[k] = {"median_ms": best["median_ms"], "p90_ms": best["p90_ms"],
                  "mean_ms": float(np.mean([x["mean_ms"] for x in rs])), "runs": sum(x["runs"] for x in rs),
                  "rounds_ms": [round(x["median_ms"], 4) for x in rs]}
    return out


def session_call(path: Path, input_range: float, threads: int):
    """fn() running ``path`` once on a fixed input, in an ONNX Runtime session of ``threads`` (0: all) threads."""
    sess = session(path, threads)
    feed = probe_input(sess, input_range)
    return lambda: sess.run(None, feed)


class Step:
    """One model of the chain: its session, a scale applied to its input, its input name."""

    def __init__(self, sess, scale: float = 1.0):
        self.sess, self.scale = sess, np.float32(scale)
        self.name = sess.get_inputs()[0].name

    def __call__(self, x):
        outs = self.sess.run(None, {self.name: x * self.scale if self.scale != 1 else x})
        return outs[0] if len(outs) == 1 else outs


def make_chain(paths: list[Path], scales: list[float], threads: int) -> list[Step]:
    return [Step(session(p, threads), s) for p, s in zip(paths, scales)]


def run_serial(chain: list[Step], frames: list[np.ndarray]) -> tuple[float, list]:
    outs = []
    t0 = time.perf_counter()
    for x in frames:
        for step in chain:
            x = step(x)
        outs.append(x)
    return time.perf_counter() - t0, outs


def run_parallel(chain: list[Step], frames: list[np.ndarray], depth: int = 4) -> tuple[float, list]:
    """One thread per step, bounded queues between them; returns (wall seconds, outputs in order)."""
    stop = object()
    qs = [queue.Queue(maxsize=depth) for _ in range(len(chain) + 1)]
    errors: list[BaseException] = []

    def worker(step, q_in, q_out):
        while True:
            item = q_in.get()
            if item is stop:
                q_out.put(stop)
                return
            try:
                q_out.put(step(item))
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                errors.append(e)
                q_out.put(stop)
                return

    threads = [threading.Thread(target=worker, args=(s, qs[i], qs[i + 1]), daemon=True)
               for i, s in enumerate(chain)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()

    def feed():
        for x in frames:
            qs[0].put(x)
        qs[0].put(stop)
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    outs = []
    while True:
        item = qs[-1].get()
        if item is stop:
            break
        outs.append(item)
    wall = time.perf_counter() - t0
    for t in threads + [feeder]:
        t.join(timeout=5)
    if errors:
        raise errors[0]
    return wall, outs


def _max_diff(a: list, b: list) -> float:
    flat = lambda o: o if isinstance(o, list) else [o]  # noqa: E731
    return float(max((np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))
                      for p, q in zip(a, b) for x, y in zip(flat(p), flat(q))), default=0.0))


def chain_fps(paths: list[Path], scales: list[float], frames: list[np.ndarray], warmup: int = 2,
              depth: int = 4, cores: int | None = None) -> dict:
    """Serial vs parallel frames/s of a chain of ONNX files (see the module docstring)."""
    cores = cores or host_cores()
    per_model = max(1, cores // len(paths))
    parallel = make_chain(paths, scales, per_model)
    serial = {n: make_chain(paths, scales, n) for n in sorted({1, cores})}
    for chain in [parallel, *serial.values()]:
        run_serial(chain, frames[:max(1, warmup)])
    by_threads, out_s = {}, None
    for n, chain in serial.items():
        t, out = run_serial(chain, frames)
        by_threads[n] = len(frames) / t
        out_s = out_s or out
    t_p, out_p = run_parallel(parallel, frames, depth)
    if len(out_p) != len(frames):
        raise RuntimeError(f"parallel chain returned {len(out_p)} of {len(frames)} frames")
    best = max(by_threads, key=by_threads.get)
    fps_p = len(frames) / t_p
    return {"frames": len(frames), "cores": cores, "serial_threads_per_model": best,
            "parallel_threads_per_model": per_model, "serial_fps": by_threads[best],
            "serial_fps_by_threads": by_threads, "parallel_fps": fps_p, "speedup": fps_p / by_threads[best],
            "max_abs_diff_serial_vs_parallel": _max_diff(out_s, out_p)}

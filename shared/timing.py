"""One timing loop for every latency this toolchain reports (the quantize stage's benchmark, the
report's files in ONNX Runtime and OpenVINO): warm-up, then runs for at least a given time."""
from __future__ import annotations

import time

import numpy as np


def timed(call, warmup: int, runs: int, min_seconds: float = 0.0) -> dict:
    """Median, p90 and mean ms of ``call()``: ``warmup`` untimed calls (and at least a tenth of
    ``min_seconds``: a thread pool wakes up), then timed calls until there are ``runs`` of them *and*
    ``min_seconds`` have passed. A 4 ms net timed 10 times is 40 ms of measurement, which one scheduler
    hiccup decides (the demo's pruned pipeline once read 9.3 ms with 2 threads where 0.5 s of runs read 3.4)."""
    t_end = time.perf_counter() + min_seconds / 10
    n = 0
    while n < warmup or time.perf_counter() < t_end:
        call()
        n += 1
    times: list[float] = []
    t_end = time.perf_counter() + min_seconds
    while len(times) < runs or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1e3)
    a = np.asarray(times)
    return {"median_ms": float(np.median(a)), "p90_ms": float(np.percentile(a, 90)), "mean_ms": float(a.mean()),
            "runs": len(a)}

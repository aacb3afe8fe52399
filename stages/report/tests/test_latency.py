"""Latency harness on tiny ONNX models: timings are real and positive, the parallel chain
returns every frame in order with the serial chain's outputs."""
import numpy as np

from shared.timing import timed
from stages.report.latency import chain_fps, make_chain, run_parallel, run_serial, session_call, thread_label, time_rounds

from conftest import SIZE, build_model


def test_session_calls_timed_in_rounds(tmp_path):
    """The report's path: one session per thread setting, every call timed in each pass."""
    p = build_model("yunet", tmp_path / "yunet.onnx")
    calls = {thread_label(n): session_call(p, 255.0, n) for n in (1, 0)}
    r = time_rounds(calls, warmup=1, runs=6, min_seconds=0.0, rounds=2)
    assert set(r) == {"1", "all"}
    for v in r.values():
        assert 0 < v["median_ms"] <= v["p90_ms"] * 1.0001 < 1e4 and v["runs"] == 6 and len(v["rounds_ms"]) == 2


def test_timed_runs_at_least_runs_and_min_seconds():
    import time
    calls = []

    def call():
        calls.append(1)
        time.sleep(0.002)
    r = timed(call, warmup=2, runs=3, min_seconds=0.0)
    assert r["runs"] == 3 and len(calls) == 5 and 1.5 < r["median_ms"] < 50
    calls.clear()
    r = timed(call, warmup=0, runs=3, min_seconds=0.1)       # 0.1 s of 2 ms calls: far more than 3
    assert r["runs"] >= 20 and len(calls) >= r["runs"] + 2   # and a tenth of it warmed up first


def test_rounds_take_the_fastest_pass_so_a_spell_moves_no_file():
    """A call slowed 5x during two passes of three keeps its own speed; every pass times every call."""
    import time
    passes = {"n": 0}

    def fast():
        time.sleep(0.001)

    def spelled():
        time.sleep(0.005 if passes["n"] >= 1 else 0.001)
    order = []
    r = time_rounds({"a": fast, "b": spelled}, warmup=0, runs=3, min_seconds=0.0, rounds=3,
                    progress=lambda n: (order.append(n), passes.update(n=len(order) // 2)))
    assert len(order) == 6 and r["a"]["runs"] == r["b"]["runs"] == 3
    assert len(r["b"]["rounds_ms"]) == 3 and min(r["b"]["rounds_ms"][1:]) > 3 * r["b"]["rounds_ms"][0]
    assert r["b"]["median_ms"] < 2.5 and abs(r["b"]["median_ms"] - r["a"]["median_ms"]) < 1.0


def test_chain_serial_equals_parallel(tmp_path):
    paths = [build_model(k, tmp_path / f"{k}.onnx") for k in ("enhancer", "denoiser", "yunet")]
    rng = np.random.default_rng(0)
    frames = [rng.random((1, 3, SIZE, SIZE), dtype=np.float32) for _ in range(7)]
    chain = make_chain(paths, [1.0, 1.0, 255.0], 1)
    _, serial = run_serial(chain, frames)
    _, parallel = run_parallel(chain, frames, depth=2)
    assert len(parallel) == 7
    for s, p in zip(serial, parallel):
        assert len(s) == 12
        for a, b in zip(s, p):
            np.testing.assert_array_equal(a, b)
    r = chain_fps(paths, [1.0, 1.0, 255.0], frames, warmup=1, depth=2, cores=2)
    assert r["frames"] == 7 and r["serial_fps"] > 0 and r["parallel_fps"] > 0
    assert r["parallel_threads_per_model"] == 1 and set(r["serial_fps_by_threads"]) == {1, 2}
    assert r["serial_fps"] == max(r["serial_fps_by_threads"].values())
    assert abs(r["speedup"] - r["parallel_fps"] / r["serial_fps"]) < 1e-9
    assert r["max_abs_diff_serial_vs_parallel"] < 1e-3


def test_parallel_propagates_errors(tmp_path):
    p = build_model("enhancer", tmp_path / "enhancer.onnx")
    chain = make_chain([p], [1.0], 1)
    bad = [np.zeros((1, 3, 5, 5), np.float32)]  # wrong shape for a static graph
    try:
        run_parallel(chain, bad)
    except Exception as e:  # noqa: BLE001
        assert "input" in str(e).lower() or "dimension" in str(e).lower()
    else:
        raise AssertionError("a failing model must fail the parallel run")

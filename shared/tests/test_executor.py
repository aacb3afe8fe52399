"""shared.executor: cells run in order, attempts counted, bad settings named in one line."""
import pytest

from shared import executor

LOCAL = {"kind": "local", "address": "ray://127.0.0.1:1", "retries": 2, "cpus_per_cell": 1}


def square(x):
    return x * x


def test_local_runs_in_order_and_counts_attempts(tmp_path):
    assert executor.run_cells(square, [3, 1, 2], LOCAL, None, tmp_path / "a") == [9, 1, 4]
    assert executor.attempt_counts(tmp_path / "a", 3) == [1, 1, 1]
    (tmp_path / "a" / "1.attempts").write_text("w1 1 0\nw2 2 1\n")     # what a retried cell leaves
    assert executor.attempt_counts(tmp_path / "a", 3) == [1, 2, 1]


def test_unknown_kind_and_unreachable_cluster_say_so():
    with pytest.raises(executor.ExecutorError, match="executor.kind"):
        executor.run_cells(square, [1], {**LOCAL, "kind": "spark"}, None)
    with pytest.raises(executor.ExecutorError, match="no Ray cluster answers.*invoke cluster up"):
        executor.run_cells(square, [1], {**LOCAL, "kind": "ray"}, None)
    with pytest.raises(executor.ExecutorError, match="not a Ray Client address"):
        executor.run_cells(square, [1], {**LOCAL, "kind": "ray", "address": "ray-head:6379"}, None)


def test_code_digest_is_stable():
    assert executor.code_digest("shared") == executor.code_digest("shared")

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


def test_unknown_kind_and_unreachable_cluster_say_so(monkeypatch):
    monkeypatch.setattr(executor, "REACH_WAIT_S", 0.0)   # no waiting for a head that is starting
    with pytest.raises(executor.ExecutorError, match="executor.kind"):
        executor.run_cells(square, [1], {**LOCAL, "kind": "spark"}, None)
    with pytest.raises(executor.ExecutorError, match="no Ray cluster answers.*invoke cluster up"):
        executor.run_cells(square, [1], {**LOCAL, "kind": "ray"}, None)
    with pytest.raises(executor.ExecutorError, match="not a Ray Client address"):
        executor.run_cells(square, [1], {**LOCAL, "kind": "ray", "address": "ray-head:6379"}, None)


def test_a_starting_head_is_waited_for(monkeypatch):
    import socket
    import threading
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    threading.Timer(1.0, srv.listen).start()   # the port opens a second after the first try
    monkeypatch.setattr(executor, "REACH_WAIT_S", 20.0)
    try:
        executor._reachable(f"ray://127.0.0.1:{port}", poll_s=0.2)
    finally:
        srv.close()


def test_code_digest_is_stable():
    assert executor.code_digest("shared") == executor.code_digest("shared")


def threads_seen(_):
    import os
    torch = executor._torch()
    return os.environ["JMMC_THREADS"], torch.get_num_threads() if torch else None


def test_a_cell_computes_with_cpus_per_cell_threads_on_any_local_executor(tmp_path, monkeypatch):
    """Float results depend on the thread count: in the stage's process and in spawned ones alike a
    cell sees ``cpus_per_cell`` threads, and the stage's own setting comes back afterwards."""
    monkeypatch.setenv("JMMC_THREADS", "2")
    torch = executor._torch()
    before = torch.get_num_threads() if torch else None
    one = {**LOCAL, "workers": 1}
    assert executor.in_process(one, 2)
    assert executor.run_cells(threads_seen, [0, 1], one, None) == [("1", 1 if torch else None)] * 2
    assert (torch.get_num_threads() if torch else None) == before
    import os
    assert os.environ["JMMC_THREADS"] == "2"
    two = {**LOCAL, "workers": 2}
    assert not executor.in_process(two, 3) and executor.in_process(two, 1)   # one cell: no process to spawn
    assert executor.run_cells(threads_seen, [0, 1, 2], two, None, tmp_path / "p") == [("1", 1 if torch else None)] * 3
    assert executor.attempt_counts(tmp_path / "p", 3) == [1, 1, 1]


def test_local_workers_default_splits_the_stage_cores(monkeypatch):
    monkeypatch.setenv("JMMC_THREADS", "4")
    assert executor.local_workers({**LOCAL, "workers": 0, "cpus_per_cell": 2}) == 2
    assert executor.local_workers({**LOCAL, "workers": 0, "cpus_per_cell": 8}) == 1
    assert executor.local_workers({**LOCAL, "workers": 3}) == 3


def test_a_failing_cell_in_a_spawned_process_raises_its_own_error():
    with pytest.raises(ZeroDivisionError):
        executor.run_cells(reciprocal, [1, 0], {**LOCAL, "workers": 2}, None)


def reciprocal(x):
    return 1 / x


def test_a_head_that_is_not_ready_yet_is_tried_again():
    class FakeRay:
        def __init__(self, fails):
            self.fails, self.calls = fails, 0

        def init(self, **kw):
            self.calls += 1
            if self.calls <= self.fails:
                raise ConnectionAbortedError("Initialization failure from server:\nStarting Ray client server failed")

        def shutdown(self):
            pass
    ok = FakeRay(2)
    executor._connect(ok, "ray://h:10001", None, tries=3, wait_s=0)
    assert ok.calls == 3
    with pytest.raises(executor.ExecutorError, match="did not accept a client after 2 tries"):
        executor._connect(FakeRay(5), "ray://h:10001", None, tries=2, wait_s=0)


def test_local_reads_ray_as_local_and_keeps_the_rest():
    spec = {"kind": "ray", "workers": 0, "cpus_per_cell": 2, "address": "ray://h:1", "retries": 2}
    assert executor.local(spec) == {**spec, "kind": "local"}
    assert executor.local({**spec, "kind": "local"}) == {**spec, "kind": "local"}


def _log_from_cell(_job):
    import logging
    logging.getLogger("stages.demo").info("hello from a cell")
    return 1


def test_a_spawned_cell_logs_through_the_stage_handler(capfd):
    import logging
    log = logging.getLogger("stages.demo")
    log.setLevel(logging.INFO)
    spec = {"kind": "local", "workers": 2, "cpus_per_cell": 1, "address": "", "retries": 0}
    assert executor.run_cells(_log_from_cell, [0, 1], spec, log) == [1, 1]
    err = capfd.readouterr().err
    assert "[demo cell " in err and "INFO hello from a cell" in err


def _mmap_max(_job):
    """How far a 64 MiB block moves the program break: about 64 MiB when it comes from the heap (mmap
    off), 0 when glibc maps it (its default above the mmap threshold)."""
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    libc.sbrk.restype = ctypes.c_void_p
    before = libc.sbrk(0)
    buf = ctypes.create_string_buffer(64 << 20)
    del buf
    return libc.sbrk(0) - before


def test_cells_keep_freed_memory_in_spawned_processes():
    """shared.allocator: a cell's large blocks come from the heap (no mmap), and stay there once freed."""
    spec = {"kind": "local", "workers": 2, "cpus_per_cell": 1, "address": "", "retries": 0}
    grown = executor.run_cells(_mmap_max, [0, 1], spec, None)
    assert all(g >= 32 << 20 for g in grown), grown   # 0 without shared.allocator


class _Cluster:
    """A stand-in for the ``ray`` module: nodes that join after ``late`` calls of ``nodes()``."""

    def __init__(self, late: int):
        self.calls, self.late = 0, late

    def nodes(self):
        self.calls += 1
        head = {"Alive": True, "Resources": {}}
        worker = {"Alive": True, "Resources": {"CPU": 1.0}, "NodeManagerAddress": "10.0.0.2"}
        return [head] + ([worker] if self.calls > self.late else [])


def test_workers_that_join_late_are_waited_for():
    ray = _Cluster(late=2)
    nodes = executor._cpu_nodes(ray, wait_s=5, poll_s=0.01)
    assert [n["NodeManagerAddress"] for n in nodes] == ["10.0.0.2"] and ray.calls == 3
    assert executor._cpu_nodes(_Cluster(late=10 ** 6), wait_s=0.05, poll_s=0.01) == []


def test_a_worker_gone_since_it_was_listed_is_left_out_of_the_code_check():
    """A node Ray still listed as alive but whose pinned task cannot run is skipped; none answering is an error."""
    import logging
    from types import SimpleNamespace

    class Gone(Exception):
        pass

    class Ray:
        exceptions = SimpleNamespace(RayError=Gone)

        @staticmethod
        def get(ref):
            if ref == "dead":
                raise Gone("The task is not schedulable: The node specified via NodeAffinitySchedulingStrategy "
                           "doesn't exist any more")
            return ref
    nodes = [{"NodeManagerAddress": "10.0.0.2"}, {"NodeManagerAddress": "10.0.0.3"}]
    assert executor._answers(Ray, nodes, ["abc", "dead"], logging.getLogger("t")) == [(nodes[0], "abc")]
    assert executor._answers(Ray, nodes, ["dead", "dead"]) == []

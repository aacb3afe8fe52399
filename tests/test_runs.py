"""The driver on toy stages: corrupt outputs, DVC-style keys, --keep-going, --jobs, the run lock, kills."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from host import cache, driver, runners, scheduler
from shared import dag as daglib

TOY = Path(__file__).with_name("toy_stage.py")
REPO = Path(__file__).resolve().parents[1]


class ToyRunner:
    """Runs tests/toy_stage.py instead of a stage image; ``behave[name]`` adds its flags."""
    kind = "local"

    def __init__(self, run_dir, behave=None):
        self.run_dir, self.behave = run_dir, behave or {}

    def env_id(self, image):
        return "toy"

    def prepare(self, image, env=None, force=False):
        pass

    def command(self, stage, config_path, key, env_id, run="run", threads=0):
        return [sys.executable, str(TOY), stage.name, str(self.run_dir), key, *self.behave.get(stage.name, [])]

    def stop(self, run, names):
        runners.terminate_children()

    def stop_orphans(self, run):
        return []


def toy_dag(tmp_path):
    p = tmp_path / "pipeline.yaml"   # dataset -> train -> {prune, esp} -> report
    p.write_text("dataset: {deps: [], image: x}\ntrain: {deps: [dataset], image: x}\n"
                 "prune: {deps: [train], image: x}\nesp: {deps: [train], image: x}\n"
                 "report: {deps: [prune, esp], image: x}\n")
    return daglib.load_dag(p)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """(run(...) -> rows, run_dir, runner): driver.run on the toy DAG with the smoke config's run name."""
    dag = toy_dag(tmp_path)
    monkeypatch.setattr(driver, "VOLUMES", tmp_path / "volumes")
    monkeypatch.setattr(driver, "load_dag", lambda: dag)
    monkeypatch.setattr(driver, "choose_runner", lambda r: "local")
    run_dir = tmp_path / "volumes" / driver.load("configs/smoke.yaml")["run"]
    r = ToyRunner(run_dir)
    monkeypatch.setattr(driver, "make_runner", lambda kind, osi: r)

    def go(**kw):
        return {s.stage: s for s in driver.run(list(dag), "configs/smoke.yaml", "local", build=False, **kw)}
    return go, run_dir, r, dag


def times(run_dir, name):
    f = run_dir.parent / "times" / name
    return [tuple(map(float, ln.split())) for ln in f.read_text().splitlines()] if f.exists() else []


def status_of(run_dir, dag):
    cfg = driver.load("configs/smoke.yaml")
    out = {}
    for n, st in dag.items():
        out[n] = cache.stage_status(st, cfg, run_dir, "toy", out)
    return out


def test_altered_output_is_corrupt_and_the_rerun_repairs_it(toy):
    go, run_dir, _, dag = toy
    assert all(s.state == "done" for s in go().values())
    time.sleep(0.01)
    (run_dir / "report" / "data.txt").write_text("rePort")              # same size, new content: hashed
    assert status_of(run_dir, dag)["report"].state == "corrupt"
    (run_dir / "train" / "data.txt").write_text("x")                   # truncated / edited by hand
    st = status_of(run_dir, dag)
    assert st["train"].state == "corrupt" and "corrupt: data.txt" in st["train"].reason
    assert "invoke stage train" in st["train"].reason and st["prune"].state == "stale"
    go()
    assert (run_dir / "train" / "data.txt").read_text() == "train" and len(times(run_dir, "train")) == 2
    # train reproduced identical bytes: prune's key (train's output hashes) did not change
    assert len(times(run_dir, "prune")) == 1 and len(times(run_dir, "report")) == 2
    assert all(s.state == "done" for s in status_of(run_dir, dag).values())


def test_identical_forced_rerun_keeps_dependants_cached(toy):
    go, run_dir, _, _ = toy
    go()
    rows = go(force=["train"])
    assert len(times(run_dir, "train")) == 2 and "ran in" in rows["train"].reason
    assert all(len(times(run_dir, n)) == 1 for n in ("prune", "esp", "report"))


def test_keep_going_runs_the_independent_branch(toy):
    go, run_dir, r, _ = toy
    r.behave["prune"] = ["--fail"]
    with pytest.raises(driver.RunFailed, match="failed: prune; blocked: report") as e:
        go(keep_going=True)
    rows = {s.stage: s.state for s in e.value.rows}
    assert rows == {"dataset": "done", "train": "done", "prune": "failed", "esp": "done", "report": "blocked"}
    assert not list((run_dir / ".tmp").iterdir())
    r.behave = {"esp": ["--fail"]}
    with pytest.raises(driver.RunFailed, match=r"^stage esp failed \(exit 1\)"):
        go(force=["esp"])                                                 # without it: the one failure


def test_jobs_runs_independent_stages_side_by_side_in_dag_order(toy):
    go, run_dir, r, _ = toy
    r.behave.update(prune=["--sleep", "1.0"], esp=["--sleep", "1.0"])
    t0 = time.time()
    go(jobs=2)
    (p0, p1), (e0, e1) = times(run_dir, "prune")[0], times(run_dir, "esp")[0]
    assert p0 < e1 and e0 < p1, "prune and esp overlapped"
    assert times(run_dir, "train")[0][1] <= min(p0, e0) and times(run_dir, "report")[0][0] >= max(p1, e1)
    assert time.time() - t0 < 1.9 + 1.5          # serial would be >= 2 s of sleeping alone


def test_a_second_invoke_on_the_run_is_refused(toy):
    go, run_dir, _, _ = toy
    with scheduler.run_lock(run_dir):
        with pytest.raises(driver.PipelineError, match=rf"run {run_dir.name} is locked by pid {os.getpid()}"):
            go()


def test_a_killed_driver_leaves_no_stage_process_and_no_tmp(tmp_path):
    """SIGTERM to the driver: the stage process is stopped and its half-written folder removed."""
    pid_file = tmp_path / "stage.pid"
    script = tmp_path / "drive.py"
    script.write_text(textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, {str(REPO / 'tests')!r})
        from pathlib import Path
        from host import driver
        from test_runs import ToyRunner, toy_dag
        tmp = Path({str(tmp_path)!r})
        dag = toy_dag(tmp)
        driver.VOLUMES = tmp / "volumes"
        driver.load_dag = lambda: dag
        driver.choose_runner = lambda r: "local"
        run_dir = tmp / "volumes" / driver.load("configs/smoke.yaml")["run"]
        r = ToyRunner(run_dir, {{"dataset": ["--sleep", "60", "--pid-file", {str(pid_file)!r}]}})
        driver.make_runner = lambda kind, osi: r
        try:
            driver.run(list(dag), "configs/smoke.yaml", "local", build=False)
        except driver.PipelineError as e:
            print("driver:", e)
    """))
    p = subprocess.Popen([sys.executable, str(script)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    stage_pid = int(pid_file.read_text())
    run_dir = tmp_path / "volumes" / "smoke"
    assert list((run_dir / ".tmp").iterdir())                            # the stage is writing
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=60)
    assert "interrupted: the running stages' containers were stopped" in out
    with pytest.raises(ProcessLookupError):
        os.kill(stage_pid, 0)
    assert not list((run_dir / ".tmp").iterdir()) and not (run_dir / "dataset").exists()


def test_switching_a_config_value_back_restores_from_the_run_cache(toy, tmp_path):
    go, run_dir, _, dag = toy
    go()
    other = tmp_path / "other.yaml"          # the smoke config with one train value changed
    other.write_text(f"_base_: {REPO / 'configs' / 'smoke.yaml'}\ntrain:\n  amp: true\n")
    assert "amp: true" in other.read_text()
    rows = {s.stage: s for s in driver.run(list(dag), str(other), "local", build=False)}
    assert rows["train"].reason.startswith("ran in") and len(times(run_dir, "train")) == 2
    rows = {s.stage: s for s in driver.run(list(dag), "configs/smoke.yaml", "local", build=False)}
    assert rows["train"].reason.startswith("restored from the run cache") and len(times(run_dir, "train")) == 2
    assert all(s.state == "done" for s in status_of(run_dir, dag).values())
    assert driver.clean(run_dir.name, cache_only=True) == [run_dir / ".cache"] and (run_dir / "train").is_dir()


def test_smoke_records_check_names_what_is_wrong(tmp_path):
    """host.testing.records_problems: a record off the schema, and an ONNX record the report did not show."""
    import json as _json

    from host.testing import records_problems
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "a.onnx").write_bytes(b"x")
    rec = {"file": "a.onnx", "role": "detector", "precision": "fp32", "format": "onnx", "chain": ".",
           "label": None, "metrics": None, "cost": None}
    (tmp_path / "train" / "manifest.json").write_text(_json.dumps({"stage": "train", "artifacts": [rec]}))
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "manifest.json").write_text(_json.dumps({"stage": "report", "artifacts": []}))
    (tmp_path / "report" / "results.json").write_text(_json.dumps({"rows": [{"artifact": "train/a.onnx"}]}))
    assert records_problems(tmp_path, ["train", "report"]) == []
    (tmp_path / "report" / "results.json").write_text(_json.dumps({"rows": []}))
    assert records_problems(tmp_path, ["train", "report"]) == ["records the report did not show: train/a.onnx"]
    (tmp_path / "train" / "manifest.json").write_text(_json.dumps({"stage": "train", "artifacts": [{**rec, "role": "x"}]}))
    assert "role 'x' is not one of" in records_problems(tmp_path, ["train"])[0]

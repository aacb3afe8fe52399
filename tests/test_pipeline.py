"""Stage graph, cache keys / status, atomic outputs and runner choice (no engine needed)."""
import json

import pytest

from host import cache, runners
from shared import dag as daglib
from shared import manifest as mf
from shared.config import load_config, section, sha256_of


def fake_dag(tmp_path):
    p = tmp_path / "pipeline.yaml"
    p.write_text("dataset: {deps: []}\ntrain: {deps: [dataset]}\nprune: {deps: [train]}\n"
                 "esp: {deps: [train, dataset]}\nreport: {deps: [prune, esp]}\n")
    return daglib.load_dag(p)


def test_dag_order_upstream_dependants(tmp_path):
    d = fake_dag(tmp_path)
    assert list(d) == ["dataset", "train", "prune", "esp", "report"]
    assert daglib.upstream(d, "esp") == ["dataset", "train", "esp"]
    assert daglib.dependants(d, "train") == ["prune", "esp", "report"]
    assert daglib.dependants(d, "report") == []


def test_dag_rejects_forward_dependency_and_bad_key(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("train: {deps: [dataset]}\ndataset: {deps: []}\n")
    with pytest.raises(ValueError, match="'dataset' must be declared above"):
        daglib.load_dag(p)
    p.write_text("dataset: {dep: []}\n")
    with pytest.raises(ValueError, match="unknown key"):
        daglib.load_dag(p)


def test_repo_dag_images_exist():
    from host.images import load_images
    images = load_images()
    for s in daglib.load_dag().values():
        assert s.image in images, s


def finish(run_dir, name, key, cfg, inputs=None, env="e1"):
    sec = section(cfg, name) if cfg else {}
    with mf.AtomicStageDir(run_dir, name) as out:
        (out / "data.txt").write_text(name)
        mf.write_json(out / mf.MANIFEST, {"cache_key": key, "config_hash": sha256_of(sec), "config": sec,
                                         "inputs": inputs or {}, "env": {"id": env}})


def test_status_done_stale_missing(tmp_path):
    d = fake_dag(tmp_path)
    cfg = load_config("configs/smoke.yaml")
    run_dir = tmp_path / "run"
    st = {}
    st["dataset"] = cache.stage_status(d["dataset"], cfg, run_dir, "e1", st)
    assert st["dataset"].state == "missing"
    st["train"] = cache.stage_status(d["train"], cfg, run_dir, "e1", st)
    assert st["train"].state == "blocked"

    finish(run_dir, "dataset", cache.stage_key(d["dataset"], cfg, run_dir, "e1"), cfg)
    assert cache.stage_status(d["dataset"], cfg, run_dir, "e1", {}).state == "done"
    # a new image makes it stale, and says so
    s = cache.stage_status(d["dataset"], cfg, run_dir, "e2", {})
    assert s.state == "stale" and "image changed" in s.reason
    # a changed config value makes it stale, naming the key
    cfg2 = json.loads(json.dumps(cfg))
    cfg2["dataset"]["splits"]["train"] += 1
    s = cache.stage_status(d["dataset"], cfg2, run_dir, "e1", {})
    assert s.state == "stale" and s.reason == "config changed (dataset.splits.train)"

    # downstream key follows the upstream manifest: rerunning dataset makes train stale
    up = {"dataset": cache.stage_status(d["dataset"], cfg, run_dir, "e1", {})}
    finish(run_dir, "train", cache.stage_key(d["train"], cfg, run_dir, "e1"), cfg,
           {"dataset": mf.manifest_hash(run_dir, "dataset")})
    assert cache.stage_status(d["train"], cfg, run_dir, "e1", up).state == "done"
    finish(run_dir, "dataset", "other-key", cfg)
    s = cache.stage_status(d["train"], cfg, run_dir, "e1", up)
    assert s.state == "stale" and "upstream 'dataset' changed" in s.reason


def test_atomic_dir_leaves_nothing_on_failure_and_keeps_old_output(tmp_path):
    finish(tmp_path, "dataset", "k1", {})
    with pytest.raises(RuntimeError):
        with mf.AtomicStageDir(tmp_path, "dataset") as out:
            (out / "half.txt").write_text("partial")
            raise RuntimeError("killed")
    assert (tmp_path / "dataset" / "data.txt").exists()
    assert not (tmp_path / "dataset" / "half.txt").exists()
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_debris_of_a_killed_run_is_removed(tmp_path):
    debris = tmp_path / ".tmp" / "dataset-999-1"
    debris.mkdir(parents=True)
    (debris / "x").write_text("partial")
    finish(tmp_path, "dataset", "k", {})
    assert not debris.exists()


def test_require_manifest_message(tmp_path):
    with pytest.raises(mf.MissingInput, match=r"train: missing upstream artifact .*dataset/manifest.json"):
        mf.require_manifest(tmp_path, "dataset", "train")


def test_runner_choice(monkeypatch):
    monkeypatch.setattr(runners, "engine_answers", lambda: (False, "Cannot connect to the Docker daemon"))
    assert runners.choose_runner("auto") == "local"
    assert runners.choose_runner("local") == "local"
    with pytest.raises(runners.RunnerError, match="no Docker engine answers .*Cannot connect"):
        runners.choose_runner("docker")
    monkeypatch.setattr(runners, "engine_answers", lambda: (True, "20.10"))
    assert runners.choose_runner("auto") == "docker"
    with pytest.raises(runners.RunnerError, match="auto, docker or local"):
        runners.choose_runner("podman")


def test_engine_answers_without_cli(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    ok, why = runners.engine_answers()
    assert not ok and "not installed" in why

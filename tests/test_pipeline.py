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


def _stage_output(run_dir, name, files: dict):
    """A stage output with ``files`` (name -> text) and a manifest built as the stages build theirs."""
    with mf.AtomicStageDir(run_dir, name) as out:
        for rel, text in files.items():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_text(text)
        mf.write_json(out / mf.MANIFEST, {"hashes": mf.hash_files(out), "content": mf.content_hashes(out)})


def test_content_hash_leaves_out_run_records_and_times(tmp_path):
    """A rerun that reproduces the same results with other times and logs keeps the downstream key;
    a changed result (or a new output file) changes it."""
    weights = "w" * 10
    run = {"model.onnx": weights, "metrics.json": json.dumps({"ap": 0.8, "seconds": 12.5, "speed": {"fp32_ms": 3.1}}),
           "bundle.json": json.dumps({"made_by": {"seconds": 100.0, "stage": "train"}}),
           "mmdet/20261207_094037.log.json": "{}", "train.log": "epoch 1 took 3 s", "int8.ppq.json": '{"1234": 1}'}
    _stage_output(tmp_path, "train", run)
    first, first_sha = mf.manifest_hash(tmp_path, "train"), mf.read_manifest(tmp_path, "train")["hashes"]
    again = {"model.onnx": weights,
             "metrics.json": json.dumps({"seconds": 99.0, "ap": 0.8, "speed": {"fp32_ms": 4.7}}, indent=2),
             "bundle.json": json.dumps({"made_by": {"seconds": 7.0, "stage": "train"}}),
             "mmdet/20261208_101010.log.json": "{}", "train.log": "epoch 1 took 4 s", "int8.ppq.json": '{"99": 1}'}
    _stage_output(tmp_path, "train", again)
    m = mf.read_manifest(tmp_path, "train")
    assert m["hashes"]["metrics.json"] != first_sha["metrics.json"]    # integrity: sha256 of every byte
    assert "train.log" in m["hashes"] and "train.log" not in m["content"]
    assert mf.manifest_hash(tmp_path, "train") == first
    _stage_output(tmp_path, "train", {**again, "metrics.json": json.dumps({"ap": 0.81, "seconds": 99.0})})
    assert mf.manifest_hash(tmp_path, "train") != first
    _stage_output(tmp_path, "train", {**again, "extra.onnx": "x"})
    assert mf.manifest_hash(tmp_path, "train") != first


def test_volatile_keys_and_records():
    for k in ("seconds", "ptq_seconds", "fp32_ms", "ort_int8_speedup", "speedup", "images_per_s",
              "train_images_per_s"):
        assert mf.VOLATILE_KEY.search(k), k
    for k in ("ap", "params", "rms", "macs", "ms_ssim", "seconds_budget", "psnr_db", "threads"):
        assert not mf.VOLATILE_KEY.search(k), k
    assert mf.is_record("a/b/20261207_094037.log.json") and mf.is_record("int8.ppq.log")
    assert mf.is_record("x/mixed.ppq.json") and not mf.is_record("x/mixed_int16_layers.json")
    assert not mf.is_record("history.json") and not mf.is_record("catalog.md")

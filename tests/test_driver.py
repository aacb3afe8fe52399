"""Driver errors are one clear line; status reports the truth after a config edit."""
import json
import pytest

from host import driver, runners


def test_unknown_stage(monkeypatch):
    monkeypatch.setattr(runners, "engine_answers", lambda: (False, "no engine"))
    with pytest.raises(driver.PipelineError, match="unknown stage 'nope'; stages: dataset"):
        driver.run(["nope"], "configs/smoke.yaml", "local")


def test_bad_config_names_file_line_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("run: x\ndataset:\n  splitz: {}\n")
    with pytest.raises(driver.PipelineError, match=r"c.yaml:3: dataset.splitz: unknown key \(did you mean 'splits'\?\)"):
        driver.run(["dataset"], str(p), "local")


def test_docker_runner_required_but_absent(monkeypatch):
    monkeypatch.setattr(runners, "engine_answers", lambda: (False, "Cannot connect to the Docker daemon"))
    with pytest.raises(driver.PipelineError, match="no Docker engine answers"):
        driver.run(["dataset"], "configs/smoke.yaml", "docker")


def test_resolved_config_is_written_once(tmp_path, monkeypatch):
    monkeypatch.setattr(driver, "VOLUMES", tmp_path)
    cfg = driver.load("configs/smoke.yaml")
    p = driver.write_resolved(cfg)
    mtime = p.stat().st_mtime_ns
    assert driver.write_resolved(cfg) == p and p.stat().st_mtime_ns == mtime
    assert "dataset:" in p.read_text()
    # the stages read it back through the same loader (with every default filled)
    from shared.config import load_config
    assert load_config(p)["dataset"] == cfg["dataset"]


def test_clean_removes_only_the_named_run(tmp_path, monkeypatch):
    monkeypatch.setattr(driver, "VOLUMES", tmp_path)
    for d in ("a/dataset", "b/dataset", "wheelhouse"):
        (tmp_path / d).mkdir(parents=True)
    assert driver.clean("a") == [tmp_path / "a"]
    assert (tmp_path / "b").exists() and (tmp_path / "wheelhouse").exists()
    driver.clean(None)
    assert not (tmp_path / "b").exists() and (tmp_path / "wheelhouse").exists()


def test_unmet_image_need_is_recorded_as_skipped_with_how_to(tmp_path):
    from host.cache import stage_status
    from shared.dag import Stage
    stage = Stage("esp-build", (), "esp-build", ("image:espressif/idf:v5.3.2",))
    cfg = driver.load("configs/smoke.yaml")
    unmet = driver.missing_needs(stage, "local")
    assert unmet == ["image:espressif/idf:v5.3.2"]
    env = driver.env_id_of(None, stage, unmet)
    st = driver.write_skip(stage, cfg, tmp_path, env, "docker", unmet)
    assert st.state == "skipped"
    assert "needs espressif/idf:v5.3.2" in st.reason and "docker pull espressif/idf:v5.3.2" in st.reason
    assert "invoke stage esp-build" in st.reason
    from shared.artifacts import check_manifest
    check_manifest(json.loads((tmp_path / "esp-build" / "manifest.json").read_text()))   # the report reads it
    again = stage_status(stage, cfg, tmp_path, env, {})
    assert again.state == "skipped"                  # cached: not re-checked every run
    assert stage_status(stage, cfg, tmp_path, "docker:abc", {}).state == "stale"   # need met later


def test_unknown_need_kind(tmp_path):
    from shared.dag import Stage
    with pytest.raises(driver.PipelineError, match="unknown need 'gpu'"):
        driver.missing_needs(Stage("x", (), "x", ("gpu",)), "docker")

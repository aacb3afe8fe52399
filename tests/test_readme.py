"""`invoke readme` splices a run's snippet between its README markers and copies the plot."""
import pytest

from host import readme


def test_update_replaces_only_the_marked_block(tmp_path):
    repo, vols = tmp_path / "repo", tmp_path / "volumes"
    repo.mkdir()
    begin, end = readme.markers("demo")
    (repo / "README.md").write_text(f"# T\nbefore\n{begin}\nold table\n{end}\nafter\n")
    report = vols / "demo" / "report"
    report.mkdir(parents=True)
    (report / "README_snippet.md").write_text("| a |\n|---|\n| 1 |\n")
    (report / "ap_vs_bytes.png").write_bytes(b"png")
    written = readme.update("demo", vols, repo)
    text = (repo / "README.md").read_text()
    assert text == f"# T\nbefore\n{begin}\n| a |\n|---|\n| 1 |\n{end}\nafter\n"
    assert (repo / "docs" / "figures" / "demo_ap_vs_bytes.png").read_bytes() == b"png"
    assert len(written) == 2
    readme.update("demo", vols, repo)                     # idempotent
    assert (repo / "README.md").read_text() == text


def test_missing_markers_or_snippet_are_named(tmp_path):
    repo, vols = tmp_path / "repo", tmp_path / "volumes"
    repo.mkdir()
    (repo / "README.md").write_text("# no markers\n")
    with pytest.raises(readme.ReadmeError, match="README_snippet.md: missing; run `invoke all --config configs/demo.yaml`"):
        readme.update("demo", vols, repo)
    (vols / "demo" / "report").mkdir(parents=True)
    (vols / "demo" / "report" / "README_snippet.md").write_text("x\n")
    with pytest.raises(readme.ReadmeError, match=r"README.md: markers <!-- results:demo:begin -->"):
        readme.update("demo", vols, repo)


def test_update_copies_every_linked_figure(tmp_path):
    """Every docs/figures/<run>_<name> the snippet links is copied from the report's <name>."""
    from host import readme
    rep = tmp_path / "vol" / "x" / "report"
    rep.mkdir(parents=True)
    (rep / "README_snippet.md").write_text("![a](docs/figures/x_ap_vs_bytes.png) ![p](docs/figures/x_photos.png)\n")
    (rep / "ap_vs_bytes.png").write_bytes(b"1")
    (rep / "photos.png").write_bytes(b"2")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("a\n<!-- results:x:begin -->\n<!-- results:x:end -->\n")
    written = readme.update("x", tmp_path / "vol", repo)
    assert (repo / "docs" / "figures" / "x_photos.png").read_bytes() == b"2"
    assert len(written) == 3


def test_the_timing_table_comes_from_the_manifests(tmp_path):
    import json
    repo, vols = tmp_path / "repo", tmp_path / "volumes"
    repo.mkdir()
    tb, te = readme.markers("demo", "timings")
    rb, re_ = readme.markers("demo")
    (repo / "README.md").write_text(f"{rb}\n{re_}\n## Timings\n{tb}\n| stage | old hand-typed |\n{te}\n")
    for name, wall, skipped in (("dataset", 61.2, None), ("train", 572.4, None), ("esp-build", 0.0, "needs espressif/idf; x")):
        (vols / "demo" / name).mkdir(parents=True)
        (vols / "demo" / name / "manifest.json").write_text(json.dumps(
            {"wall_s": wall, "started": "2026-12-02T06:00:00", "skipped": skipped, "config_hash": "h-" + name}))
    (vols / "demo" / "report").mkdir(exist_ok=True)
    (vols / "demo" / "report" / "README_snippet.md").write_text("table\n")
    readme.update("demo", vols, repo)
    text = (repo / "README.md").read_text()
    assert "old hand-typed" not in text
    assert "| dataset | 61 s | 1.0 min | 2026-12-02T06:00:00 | ran |" in text
    assert "| train | 572 s | 9.5 min |" in text and "| esp-build | 0 s | 0.0 min | 2026-12-02T06:00:00 | skipped: needs espressif/idf |" in text
    assert "| **all stages** | **634 s** | **10.6 min** |" in text
    assert text.index("| dataset") < text.index("| train") < text.index("| esp-build")   # DAG order
    # the same wall times, for `invoke all` on a fresh clone (host.driver.expected_seconds); skipped stages left out
    assert json.loads((repo / "docs" / "timings" / "demo.json").read_text()) == {
        "dataset": {"wall_s": 61.2, "config_hash": "h-dataset"}, "train": {"wall_s": 572.4, "config_hash": "h-train"}}


def test_expected_time_falls_back_to_the_committed_record(tmp_path, monkeypatch):
    import json
    from types import SimpleNamespace

    from host import driver
    from shared import config as cfglib
    cfg = {"run": "demo", "seed": 0, "train": {"epochs": 3}}
    stage = SimpleNamespace(sections=[])
    want = cfglib.sha256_of(cfglib.section(cfg, "train", []))
    monkeypatch.setattr(driver, "TIMINGS", tmp_path / "timings")
    run_dir = tmp_path / "volumes" / "demo"
    assert driver.expected_seconds(run_dir, "train", cfg, stage) is None
    (tmp_path / "timings").mkdir()
    (tmp_path / "timings" / "demo.json").write_text(json.dumps({"train": {"wall_s": 572.4, "config_hash": want}}))
    secs, where = driver.expected_seconds(run_dir, "train", cfg, stage)
    assert secs == 572.4 and "docs/timings" in where
    (tmp_path / "timings" / "demo.json").write_text(json.dumps({"train": {"wall_s": 572.4, "config_hash": "other"}}))
    assert driver.expected_seconds(run_dir, "train", cfg, stage) is None      # another config: no estimate
    (run_dir / "train").mkdir(parents=True)
    (run_dir / "train" / "manifest.json").write_text(json.dumps({"wall_s": 30.0, "config_hash": want}))
    assert driver.expected_seconds(run_dir, "train", cfg, stage) == (30.0, "last run with this config")


def test_findings_are_written_from_the_run(tmp_path):
    import json

    from host import findings
    run = tmp_path / "demo"
    (run / "train").mkdir(parents=True)
    (run / "train" / "manifest.json").write_text(json.dumps({"metrics": {"detection": {
        "pipeline": {"ap": 0.871, "nme": 0.354, "variant": "1_noisy"}, "detector_alone": {"ap": 0.725, "nme": 0.376}}}}))
    (run / "report").mkdir()
    rows = [{"key": "fp32", "ap": 0.87, "ap_lo": 0.83, "ap_hi": 0.91, "nme": 0.35, "macs": 400e6, "weight_bytes": 800,
             "lat_1_ms": 50.0, "lat_all_ms": 30.0, "precision": "fp32", "files": ["train/pipeline.onnx"]},
            {"key": "jmmc", "ap": 0.80, "ap_lo": 0.75, "ap_hi": 0.85, "nme": 0.40, "macs": 160e6, "weight_bytes": 100,
             "lat_1_ms": 20.0, "lat_all_ms": 12.0, "precision": "int8", "files": ["q/joint_qat.onnx"]}]
    diffs = [{"label": "JMMC − FP32", "value": -0.07, "lo": -0.11, "hi": -0.03, "n_images": 96}]
    (run / "report" / "results.json").write_text(json.dumps({"jmmc": {"rows": rows, "diffs": diffs}, "rows": []}))
    md = findings.markdown(run)
    assert "pipeline reaches AP@0.5 0.871 (landmark NME 0.354) where YuNet alone gets 0.725" in md
    assert "AP@0.5 0.800 [0.750, 0.850]" in md and "0.40× the FP32 chain's MACs and 0.12× its weight bytes" in md
    assert "-7.0 AP points" in md and "JMMC − FP32: AP -0.070 [-0.110, -0.030]" in md and "excludes 0" in md
    assert "Not read (not run yet): quantize." in md


def test_findings_quote_the_sim_vs_file_gap_intervals(tmp_path):
    import json

    from host import findings
    run = tmp_path / "demo"
    (run / "quantize").mkdir(parents=True)
    gap = {"files": 12, "tol": 0.005, "max_abs": 0.019, "over_tol": 5, "resolved": ["c/detector/ptq:none"],
           "median_half_width": 0.012, "n_images": 96,
           "by_model": {"detector": {"files": 6, "max_abs": 0.001, "over_tol": 0},
                        "pipeline": {"files": 6, "max_abs": 0.019, "over_tol": 5}},
           "beyond": [{"file": "c/pipeline/a.onnx", "gap": 0.011, "sd": 0.009, "spread": 0.019, "within_spread": True,
                       "unfused_gap": 0.012},
                      {"file": "c/pipeline/b.onnx", "gap": -0.019, "sd": 0.004, "spread": 0.01, "within_spread": False}],
           "ort_kernels": {"files": 3, "exact_files": 2, "max_abs": 0.012, "max_abs_exact": 0.0001, "over_tol": 1,
                           "per_file": [{"file": "c/pipeline/a.onnx", "gap": 0.0001, "exact": True, "float_ops": {}},
                                        {"file": "c/pipeline/n.onnx", "gap": -0.012, "exact": False,
                                         "float_ops": {"BatchNormalization": 18, "Conv": 18, "Sigmoid": 6}},
                                        {"file": "c/detector/d.onnx", "gap": 0.0, "exact": True,
                                         "float_ops": {"Sigmoid": 6}}]}}
    (run / "quantize" / "manifest.json").write_text(json.dumps({"metrics": {"max_sim_onnx_gap": 0.019,
                                                                            "sim_onnx_ap_gap": gap}}))
    md = findings.markdown(run)
    assert "on the 96 test images with its paired 95 % interval: 5 of 12 files differ by more than 0.5 point" in md
    assert "(largest 1.9); the intervals' median half-width is 1.2 points; 1 exclude 0 (`c/detector/ptq:none`)" in md
    assert "detector: 0 of 6 over 0.5 point (largest 0.1). pipeline: 5 of 6 over 0.5 point (largest 1.9)." in md
    assert ("`c/pipeline/a.onnx` +1.1 against a spread of 1.9 (sd 0.9; unfused +1.2); `c/pipeline/b.onnx` -1.9 "
            "against a spread of 1.0 (sd 0.4) points. 1 of 2 gaps are within their file's spread.") in md
    assert "unfused session (Q/DQ kept, float convs and adds: the file's int8 semantics by construction): 1 of 1 are also" in md
    assert ("against the 3 INT8 detection files measured with the fused kernels (the other 9 are measured unfused, "
            "against their float simulation above): it emulates every op of 2 of them; 1 give the "
            "file's AP to 1e-4 point and the largest gap is 1.20 point; float ops left in 1 (BatchNormalization, Conv, "
            "Sigmoid): "
            "`c/pipeline/n.onnx` -1.2.") in md


def test_findings_say_where_the_pruned_chains_time_stays(tmp_path):
    import json

    from host import findings
    run = tmp_path / "demo"
    (run / "report").mkdir(parents=True)
    prof = {"train/pipeline.onnx": {"system": "fp32", "total_ms": 12.0, "by_scale_ms": {"1/1": 6.0, "1/2": 6.0},
                                    "macs_by_scale": {"1/1": 30, "1/2": 70}},
            "prune/p.onnx": {"system": "jmmc_fp32", "total_ms": 10.0, "by_scale_ms": {"1/1": 6.5, "1/2": 3.5},
                             "macs_by_scale": {"1/1": 30, "1/2": 20}}}
    (run / "report" / "results.json").write_text(json.dumps({"jmmc": {"rows": []}, "rows": [], "profile": {"files": prof}}))
    md = findings.markdown(run)
    assert ("the full-resolution layers take 6.0 of the FP32 pipeline's 12.0 ms (30 % of its MACs) and 6.5 of "
            "the pruned one's 10.0 ms (60 % of its MACs)") in md


def test_findings_name_the_blocks_depth_pruning_removed(tmp_path):
    import json

    from host import findings
    run = tmp_path / "demo"
    (run / "report").mkdir(parents=True)
    (run / "prune" / "variants" / "j").mkdir(parents=True)
    (run / "prune" / "variants" / "j" / "bundle.json").write_text(json.dumps({"parts": {
        "enhancer": {"dropped": ["head.0"]}, "denoiser": {"dropped": ["head.0", "decoders.3.decode"]}, "detector": {}}}))
    rows = [{"key": "jmmc_fp32", "ap": 0.5, "files": ["prune/variants/j/pipeline.onnx"]}]
    (run / "report" / "results.json").write_text(json.dumps({"jmmc": {"rows": rows}, "rows": []}))
    md = findings.markdown(run)
    assert "removed the enhancer's `head.0`; the denoiser's `head.0`, `decoders.3.decode` - whole residual blocks" in md
    rows[0]["files"] = ["prune/variants/none/pipeline.onnx"]       # no bundle there: no line, no error
    (run / "report" / "results.json").write_text(json.dumps({"jmmc": {"rows": rows}, "rows": []}))
    assert "Depth pruning" not in findings.markdown(run)

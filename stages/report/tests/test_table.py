"""Artifact records and the table builder on synthetic run dirs: artifacts, reused metrics,
missing and skipped stages, nested skipped targets, bad records, CSV/Markdown output."""
import json

import pytest

from stages.report.records import ReportError, discover, groups, is_chain
from stages.report.table import KEYS, make_row, markdown, read_csv, skipped_rows, write_csv

from conftest import build_model, manifest, model_recs, rec


def test_discover_missing_skipped_and_undeclared(run_dir, eval_cfg):
    (run_dir / "hailo").mkdir()
    build_model("yunet", run_dir / "hailo" / "yunet_hailo.onnx")
    (run_dir / "hailo" / "manifest.json").write_text(json.dumps(manifest(
        "hailo", eval_cfg, {"hef": {"skipped": "needs the Hailo DFC wheel in volumes/wheelhouse"}},
        skipped="needs the Hailo Dataflow Compiler; put its wheel in volumes/wheelhouse",
        artifacts=[rec("yunet_hailo.onnx", "detector")])))
    for k in ("enhancer", "denoiser", "yunet"):
        build_model(k, run_dir / "prune" / "joint_50" / f"{k}.onnx", seed=3)
    build_model("yunet", run_dir / "prune" / "joint_50" / "unrecorded.onnx", seed=3)
    (run_dir / "prune" / "table.csv").write_text("level,mode,ap\n0.5,joint,0.4\n")
    (run_dir / "prune" / "manifest.json").write_text(json.dumps(manifest(
        "prune", {**eval_cfg, "limit": 2}, artifacts=model_recs("joint_50", ("enhancer", "denoiser", "yunet")))))
    order = ["dataset", "train", "prune", "quantize", "hailo", "report", "later"]
    stages = discover(run_dir, order, ["dataset", "train", "hailo"], {"report", "later"}, eval_cfg)
    by = {s.name: s for s in stages}
    assert list(by) == ["dataset", "train", "prune", "quantize", "hailo"]     # not the report nor its readers
    assert by["quantize"].skipped.startswith("did not run") and not by["quantize"].artifacts
    assert "Hailo Dataflow Compiler" in by["hailo"].skipped
    assert [a.role for a in by["hailo"].artifacts] == ["detector"]          # a skipped stage's files still count
    assert sorted(a.role for a in by["train"].artifacts) == ["denoiser", "detector", "enhancer", "pipeline"]
    assert sorted(a.rel for a in by["prune"].artifacts) == [f"joint_50/{k}.onnx" for k in ("denoiser", "enhancer", "yunet")]
    assert [t.name for t in by["prune"].tables] == ["table.csv"]
    g = groups(stages)
    assert is_chain(g["train"]) and is_chain(g["prune/joint_50"]) and not is_chain(g["hailo"])
    assert {a.group for a in by["prune"].artifacts} == {"prune/joint_50"}
    skips = skipped_rows(stages, [("plot ptq_grid.png", "no quantize table")])
    what = [s["what"] for s in skips]
    assert "stage quantize" in what and "stage hailo" in what and "hailo: hef" in what
    assert "stage prune (read, not a dependency)" in what and "plot ptq_grid.png" in what
    assert "stage train" not in what and "stage dataset" not in what


def test_upstream_metrics_reused_only_with_same_eval(run_dir, eval_cfg):
    recs = model_recs("", metrics={"pipeline": {"ap": 0.25, "nme": 0.1}})
    (run_dir / "train" / "manifest.json").write_text(json.dumps(manifest(
        "train", eval_cfg, artifacts=recs, chains={".": {"ap": 0.8, "nme": 0.1, "psnr": 19.0}})))
    order = ["dataset", "train", "report"]
    me = {"report"}
    train = discover(run_dir, order, order[:2], me, eval_cfg)[1]
    arts = {a.role: a for a in train.artifacts}
    assert arts["pipeline"].upstream == {"ap": 0.25, "nme": 0.1}
    assert arts["detector"].upstream is None
    assert train.chain_metrics == {"train": {"ap": 0.8, "nme": 0.1, "psnr": 19.0}}   # "." is the stage's own group
    other = {**eval_cfg, "score_thr": 0.5}
    train = discover(run_dir, order, order[:2], me, other)[1]
    assert {a.role: a for a in train.artifacts}["pipeline"].upstream is None and not train.chain_metrics
    train = discover(run_dir, order, order[:2], me, eval_cfg, reuse=False)[1]
    assert {a.role: a for a in train.artifacts}["pipeline"].upstream is None and not train.chain_metrics


def test_bad_records_are_errors_naming_the_manifest(run_dir, eval_cfg):
    order = ["dataset", "train", "report"]
    path = run_dir / "train" / "manifest.json"
    good = json.loads(path.read_text())
    cases = [({k: v for k, v in good.items() if k != "artifacts"}, "no 'artifacts' records"),
             ({**good, "artifacts": good["artifacts"] + [rec("gone.onnx", "detector")]}, "no such file"),
             ({**good, "artifacts": [{**good["artifacts"][0], "role": "restoration"}]}, "role 'restoration'"),
             ({**good, "artifacts": [{**good["artifacts"][0], "role": "chain"}]}, "cannot have role chain")]
    for m, msg in cases:
        path.write_text(json.dumps(m))
        with pytest.raises(ReportError, match=msg) as e:
            discover(run_dir, order, order[:2], {"report"}, eval_cfg)
        assert "train/manifest.json" in str(e.value)
    path.write_text(json.dumps({k: v for k, v in good.items() if k != "artifacts"} | {"skipped": "needs X"}))
    assert discover(run_dir, order, order[:2], {"report"}, eval_cfg)[1].artifacts == []   # skipped: nothing to show
    path.write_text('{"stage": \n')
    with pytest.raises(ReportError, match="train/manifest.json:2"):
        discover(run_dir, order, order[:2], {"report"}, eval_cfg)


def test_external_files_need_their_stage_figures(run_dir, eval_cfg):
    """A HEF or ESP-DL model only its stage can run: shown with the record's metrics and cost, and only
    when they were measured with the report's protocol."""
    esp = run_dir / "esp"
    (esp / "fp32" / "int8").mkdir(parents=True)
    (esp / "fp32" / "yunet.espdl").write_bytes(b"\0" * 10)
    recs = [rec("fp32/yunet.espdl", "detector", "int8", {"ap": 0.5}, {"weight_bytes": 7}),
            rec("fp32/int8", "chain", "int8", {"ap": 0.4}, {"bytes": 30}, chain="fp32"),
            ]
    (esp / "manifest.json").write_text(json.dumps(manifest("esp", eval_cfg, artifacts=recs)))
    order = ["dataset", "train", "esp", "report"]
    arts = {a.rel: a for a in discover(run_dir, order, order[:3], {"report"}, eval_cfg)[2].artifacts}
    assert arts["fp32/yunet.espdl"].external == {"weight_bytes": 7} and arts["fp32/yunet.espdl"].upstream == {"ap": 0.5}
    assert arts["fp32/int8"].role == "chain" and arts["fp32/int8"].group == "esp/fp32"
    assert not discover(run_dir, order, order[:3], {"report"}, {**eval_cfg, "limit": 3})[2].artifacts


def test_csv_and_markdown_roundtrip(tmp_path):
    rows = [make_row(artifact="train/yunet.onnx", stage="train", role="detector", ap=0.5, params=1234,
                     macs=2.5e6, bytes=4096, lat_1_ms=1.5),
            make_row(artifact="prune/x.onnx", stage="prune", role="detector", ap=float("nan"))]
    write_csv(rows, tmp_path / "r.csv")
    back = read_csv(tmp_path / "r.csv")
    assert list(back[0]) == KEYS and back[0]["ap"] == "0.5" and back[0]["nme"] == ""
    md = markdown(rows, pareto={"train/yunet.onnx"})
    assert "train/yunet.onnx ★" in md and "1,234" in md and "2.5 M" in md and "4.0 KiB" in md
    assert md.count("\n") == 4
    try:
        make_row(nonsense=1)
    except KeyError as e:
        assert "nonsense" in str(e)
    else:
        raise AssertionError("unknown columns must be refused")


def test_ptq_axes():
    from stages.report.plots import _is_axis
    assert _is_axis("technique", ["none", "cle", "none"])
    assert _is_axis("bits", ["8", "4", "8"])                  # few numbers: an axis
    assert not _is_axis("ap", ["0.1", "0.2"]) and not _is_axis("psnr_db", ["20", "21"])
    assert not _is_axis("eval_seconds", ["1", "2"]) and not _is_axis("const", ["a", "a"])
    assert not _is_axis("score", [str(i / 10) for i in range(10)])  # many numbers: a measurement

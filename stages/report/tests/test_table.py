"""Discovery and the table builder on synthetic run dirs: artifacts, reused metrics,
missing and skipped stages, nested skipped targets, CSV/Markdown output."""
import json

from stages.report.discover import discover, file_metrics, groups, is_chain
from stages.report.table import KEYS, make_row, markdown, read_csv, skipped_rows, write_csv

from conftest import build_model, manifest


def test_discover_missing_skipped_and_undeclared(run_dir, eval_cfg):
    (run_dir / "hailo").mkdir()
    (run_dir / "hailo" / "manifest.json").write_text(json.dumps(manifest(
        "hailo", eval_cfg, {"hef": {"skipped": "needs the Hailo DFC wheel in volumes/wheelhouse"}},
        skipped="needs the Hailo Dataflow Compiler; put its wheel in volumes/wheelhouse")))
    build_model("yunet", run_dir / "hailo" / "yunet_hailo.onnx")
    (run_dir / "prune" / "joint_50").mkdir(parents=True)
    for k in ("enhancer", "denoiser", "yunet"):
        build_model(k, run_dir / "prune" / "joint_50" / f"{k}.onnx", seed=3)
    (run_dir / "prune" / "table.csv").write_text("level,mode,ap\n0.5,joint,0.4\n")
    (run_dir / "prune" / "manifest.json").write_text(json.dumps(manifest("prune", {**eval_cfg, "limit": 2})))
    order = ["dataset", "train", "prune", "quantize", "hailo", "report", "later"]
    stages = discover(run_dir, order, ["dataset", "train", "hailo"], {"report", "later"}, eval_cfg)
    by = {s.name: s for s in stages}
    assert list(by) == ["dataset", "train", "prune", "quantize", "hailo"]     # not the report nor its readers
    assert by["quantize"].skipped.startswith("did not run") and not by["quantize"].artifacts
    assert "Hailo Dataflow Compiler" in by["hailo"].skipped
    assert [a.role for a in by["hailo"].artifacts] == ["detector"]          # a skipped stage's files still count
    assert sorted(a.role for a in by["train"].artifacts) == ["denoiser", "detector", "enhancer", "pipeline"]
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
    m = {"onnx": {"pipeline": {"file": "pipeline.onnx", "bytes": 1, "eval": {"ap": 0.25, "nme": 0.1}}}}
    (run_dir / "train" / "manifest.json").write_text(json.dumps(manifest("train", eval_cfg, m)))
    order = ["dataset", "train", "report"]
    me = {"report"}
    arts = {a.role: a for a in discover(run_dir, order, order[:2], me, eval_cfg)[1].artifacts}
    assert arts["pipeline"].upstream == {"ap": 0.25, "nme": 0.1}
    assert arts["detector"].upstream is None
    other = {**eval_cfg, "score_thr": 0.5}
    arts = {a.role: a for a in discover(run_dir, order, order[:2], me, other)[1].artifacts}
    assert arts["pipeline"].upstream is None
    arts = {a.role: a for a in discover(run_dir, order, order[:2], me, eval_cfg, reuse=False)[1].artifacts}
    assert arts["pipeline"].upstream is None


def test_quantize_rows_in_the_stage_metrics_json_are_reused(run_dir, eval_cfg):
    """The quantize stage's result rows (``onnx_file`` + ``onnx`` metrics) live in its metrics.json."""
    q = run_dir / "quantize" / "train-fp32" / "detector"
    q.mkdir(parents=True)
    build_model("yunet", q / "none_W8A8_s0.onnx")
    build_model("yunet", q / "unmeasured.onnx")
    (run_dir / "quantize" / "manifest.json").write_text(json.dumps(manifest("quantize", eval_cfg, {"grid": {}})))
    rows = [{"onnx_file": "train-fp32/detector/none_W8A8_s0.onnx", "sim": {"ap": 0.4}, "onnx": {"ap": 0.41}},
            {"onnx_file": "chain of the three qat.onnx", "onnx": {"ap": 0.3}}]
    (run_dir / "quantize" / "metrics.json").write_text(json.dumps({"rows": rows}))
    order = ["dataset", "train", "quantize", "report"]
    arts = {a.rel: a for a in discover(run_dir, order, order[:3], {"report"}, eval_cfg)[2].artifacts}
    assert set(arts) == {"train-fp32/detector/none_W8A8_s0.onnx", "train-fp32/detector/unmeasured.onnx"}
    assert arts["train-fp32/detector/none_W8A8_s0.onnx"].upstream == {"ap": 0.41}   # ONNX Runtime's, not the sim's
    assert arts["train-fp32/detector/unmeasured.onnx"].upstream is None
    (run_dir / "quantize" / "metrics.json").write_text('{"rows": [\n')
    try:
        discover(run_dir, order, order[:3], {"report"}, eval_cfg)
    except Exception as e:  # noqa: BLE001
        assert "quantize/metrics.json:2" in str(e)
    else:
        raise AssertionError("a corrupt metrics.json must be an error naming the file")


def test_stage_chain_and_file_entries_are_reused(run_dir, eval_cfg):
    """The prune stage's convention: per-file entries and one chain entry per variant dir."""
    v = run_dir / "prune" / "variants" / "j50"
    for k in ("enhancer", "denoiser", "yunet"):
        build_model(k, v / f"{k}.onnx", seed=5)
    m = {"files": [{"file": "variants/j50/enhancer.onnx", "eval": {"psnr": 25.0, "ssim": 0.8}}],
         "chains": [{"chain": "variants/j50", "eval": {"ap": 0.37, "nme": 0.5, "psnr": 26.9}}]}
    (run_dir / "prune" / "manifest.json").write_text(json.dumps(manifest("prune", eval_cfg, m)))
    order = ["dataset", "train", "prune", "report"]
    prune = discover(run_dir, order, order[:3], {"report"}, eval_cfg)[2]
    assert prune.chain_metrics == {"prune/variants/j50": {"ap": 0.37, "nme": 0.5, "psnr": 26.9}}
    arts = {a.rel: a.upstream for a in prune.artifacts}
    assert arts["variants/j50/enhancer.onnx"] == {"psnr": 25.0, "ssim": 0.8} and arts["variants/j50/yunet.onnx"] is None


def test_file_metrics_lookup():
    tree = {"rows": [{"file": "sub/a.onnx", "ap": 0.5}, {"file": "b.onnx", "psnr": 30.0}], "x": {"file": "c.onnx"}}
    assert file_metrics(tree, "sub/a.onnx") == {"file": "sub/a.onnx", "ap": 0.5}
    assert file_metrics(tree, "b.onnx")["psnr"] == 30.0
    assert file_metrics(tree, "c.onnx") is None      # no metric keys
    assert file_metrics(tree, "other/a.onnx") is None


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


def test_train_layout_aliases(run_dir, eval_cfg):
    """train keeps its metrics under restoration.* / detection.*: they map to its ONNX files and chain."""
    m = {"restoration": {"enhancer": {"psnr": 21.0, "ssim": 0.7}, "chain": {"psnr": 19.0, "ssim": 0.6}},
         "detection": {"pipeline": {"ap": 0.8, "nme": 0.1}, "detector_alone": {"ap": 0.3}}}
    (run_dir / "train" / "manifest.json").write_text(json.dumps(manifest("train", eval_cfg, m)))
    order = ["dataset", "train", "report"]
    train = discover(run_dir, order, order[:2], {"report"}, eval_cfg)[1]
    arts = {a.role: a for a in train.artifacts}
    assert arts["enhancer"].upstream == {"psnr": 21.0, "ssim": 0.7}
    assert arts["denoiser"].upstream is None                 # absent: measured by the report
    assert arts["detector"].upstream == {"ap": 0.3} and arts["pipeline"].upstream["ap"] == 0.8
    assert train.chain_metrics["train"] == {"ap": 0.8, "nme": 0.1, "psnr": 19.0, "ssim": 0.6}
    assert not discover(run_dir, order, order[:2], {"report"}, {**eval_cfg, "limit": 3})[1].chain_metrics


def test_ptq_axes():
    from stages.report.plots import _is_axis
    assert _is_axis("technique", ["none", "cle", "none"])
    assert _is_axis("bits", ["8", "4", "8"])                  # few numbers: an axis
    assert not _is_axis("ap", ["0.1", "0.2"]) and not _is_axis("psnr_db", ["20", "21"])
    assert not _is_axis("eval_seconds", ["1", "2"]) and not _is_axis("const", ["a", "a"])
    assert not _is_axis("score", [str(i / 10) for i in range(10)])  # many numbers: a measurement

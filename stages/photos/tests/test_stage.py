"""The whole stage on a fake run: tiny YuNet-shaped pipelines in train, prune and quantize."""
import json

from stages.photos import artifacts, steps


def test_artifact_selection(ctx):
    arts, none = artifacts.select(ctx.inputs, ctx.input_manifests, ctx.cfg)
    assert [a.name for a in arts] == ["train/pipeline.onnx", "prune/variants/joint_l2_r50/pipeline.onnx",
                                      "quantize/train-fp32/pipeline/none_W8A8_s0.onnx"]
    assert [a.kind for a in arts] == ["fp32", "pruned", "quantized"] and none == {}
    assert [a.precision for a in arts] == ["fp32", "fp32", "int8"]      # from the records
    # the quantize stage's val-split choice among every W8A8 pipeline is the one run
    ctx.input_manifests["quantize"]["metrics"]["int8_vs_fp32"] = {
        "train-fp32": {"int8_file": "train-fp32/pipeline/none_W8A8_s1.onnx", "int8": "none"}}
    arts, _ = artifacts.select(ctx.inputs, ctx.input_manifests, ctx.cfg)
    assert arts[-1].name == "quantize/train-fp32/pipeline/none_W8A8_s1.onnx"
    ctx.cfg["artifacts"]["prune"] = False
    ctx.input_manifests["quantize"]["skipped"] = "needs AIMET"
    arts, none = artifacts.select(ctx.inputs, ctx.input_manifests, ctx.cfg)
    assert [a.name for a in arts] == ["train/pipeline.onnx"] and set(none) == {"prune", "quantize"}
    ctx.input_manifests["train"]["artifacts"] = []
    arts, none = artifacts.select(ctx.inputs, ctx.input_manifests, ctx.cfg)
    assert arts == [] and none["train"] == "its manifest has no ONNX pipeline record"


def test_stage_writes_metrics_and_figure(ctx):
    m = steps.run(ctx)["metrics"]
    assert m["outside_training_domain"] and "OUTSIDE THE TRAINING DOMAIN" in m["note"]
    assert (ctx.out / "photos.png").stat().st_size > 10_000
    full = json.loads((ctx.out / "metrics.json").read_text())
    assert full["n_ref_faces"] == {"clean": 5, "degraded": 5}          # astronaut 1 + lfw 4 + cat 0
    assert m["n_ref_faces"] == full["n_ref_faces"] and m["n_photos"] == 3
    by = {a["artifact"]: a for a in full["artifacts"]}
    assert list(by) == list(m["summary"])
    # no int32 bias off x_scale * w_scale (shared.qdq_bias): measured with the fused kernels
    assert by["quantize/train-fp32/pipeline/none_W8A8_s0.onnx"]["ort_graph_optimization"] == "ORT_ENABLE_ALL"
    assert by["quantize/train-fp32/pipeline/none_W8A8_s0.onnx"]["precision"] == "int8 (QDQ)"
    assert by["train/pipeline.onnx"]["ort_graph_optimization"] == "ORT_ENABLE_ALL"
    for a in full["artifacts"]:
        assert a["input_size"] == [64, 64]
        for cond in ("clean", "degraded"):
            r = a["results"][cond]
            assert r["n_ref_faces"] == 5 and r["tp"] + r["fp"] == r["n_dets"] and r["fn"] == 5 - r["tp"]
            assert set(r["per_photo"]) == {"astronaut", "lfw_mosaic", "chelsea"}
            assert all(len(p["dets"]) == min(p["tp"] + p["fp"], steps.MAX_LISTED) for p in r["per_photo"].values())
            assert len(r["per_photo"]["lfw_mosaic"]["ref"]) == 4
    drawn = full["conditions"]["degraded"]["drawn"]
    assert set(drawn) == {"astronaut", "lfw_mosaic", "chelsea"} and full["conditions"]["degraded"]["variant"] == "1_noisy"
    # the report reads file entries ({"file": ..., "ap": ...}) from every stage: the photos stage writes none
    assert '"file"' not in json.dumps(full) and '"file"' not in json.dumps(m)


def test_degraded_photos_follow_the_dataset_degradation(ctx):
    from stages.photos.photos import load_photos
    photos = load_photos(["astronaut"])
    s = steps.Samples(photos, ctx.cfg, ["clean", "degraded"], "1_noisy", ctx.config["dataset"]["degradation"], 0)
    clean, dark = (x["image"] for x in s.at(64, 64))
    assert dark.mean() < 0.8 * clean.mean()                           # low light (exposure 0.25..0.4 in linear)
    again = steps.Samples(photos, ctx.cfg, ["clean", "degraded"], "1_noisy", ctx.config["dataset"]["degradation"], 0)
    assert (again.at(64, 64)[1]["image"] == dark).all()               # one draw per photo from the seed


def test_skipped_train_is_reported(ctx):
    ctx.input_manifests["train"]["skipped"] = "no GPU"
    r = steps.run(ctx)
    assert "train was skipped" in r["skipped"]

"""Report stage test fixtures: tiny ONNX models built with onnx.helper and a tiny dataset.

No torch: the restoration nets are a 3x3 conv + clip; the "detector" emits YuNet's 12
outputs (cls/obj sigmoid, bbox, kps per stride 8/16/32) from strided convs, so the
shared decode and metrics run on it for real.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SIZE = 64


def _restoration_nodes(prefix: str, x: str, rng, H):
    w = np.zeros((3, 3, 3, 3), np.float32)
    for c in range(3):
        w[c, c, 1, 1] = 1.0
    w += rng.normal(0, 0.01, w.shape).astype(np.float32)
    inits = [H.numpy_helper.from_array(w, f"{prefix}_w"), H.numpy_helper.from_array(np.full(3, 0.05, np.float32), f"{prefix}_b"),
             H.numpy_helper.from_array(np.float32(0), f"{prefix}_lo"), H.numpy_helper.from_array(np.float32(1), f"{prefix}_hi")]
    nodes = [H.helper.make_node("Conv", [x, f"{prefix}_w", f"{prefix}_b"], [f"{prefix}_c"], pads=[1, 1, 1, 1]),
             H.helper.make_node("Clip", [f"{prefix}_c", f"{prefix}_lo", f"{prefix}_hi"], [f"{prefix}_out"])]
    return nodes, inits, f"{prefix}_out"


def _detector_nodes(x: str, rng, H):
    from shared.models import OUTPUT_NAMES, STRIDES
    nodes, inits, outs = [], [], {}
    inits.append(H.numpy_helper.from_array(np.array([1, 1, 4, 10], np.int64), "det_split"))
    for s in STRIDES:
        w = rng.normal(0, 1e-5, (16, 3, s, s)).astype(np.float32)
        b = np.zeros(16, np.float32)
        b[0], b[1] = 1.0, -1.0
        inits += [H.numpy_helper.from_array(w, f"det_w{s}"), H.numpy_helper.from_array(b, f"det_b{s}"),
                  H.numpy_helper.from_array(np.array([1, -1, 16], np.int64), f"det_shape{s}")]
        nodes += [H.helper.make_node("Conv", [x, f"det_w{s}", f"det_b{s}"], [f"det_c{s}"], strides=[s, s]),
                  H.helper.make_node("Transpose", [f"det_c{s}"], [f"det_t{s}"], perm=[0, 2, 3, 1]),
                  H.helper.make_node("Reshape", [f"det_t{s}", f"det_shape{s}"], [f"det_r{s}"]),
                  H.helper.make_node("Split", [f"det_r{s}", "det_split"],
                                     [f"det_cl{s}", f"det_ob{s}", f"bbox_{s}", f"kps_{s}"], axis=2),
                  H.helper.make_node("Sigmoid", [f"det_cl{s}"], [f"cls_{s}"]),
                  H.helper.make_node("Sigmoid", [f"det_ob{s}"], [f"obj_{s}"])]
        for k, c in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10)):
            outs[f"{k}_{s}"] = c
    outputs = [H.helper.make_tensor_value_info(n, H.TensorProto.FLOAT, [1, None, outs[n]]) for n in OUTPUT_NAMES]
    return nodes, inits, outputs


def build_model(kind: str, path: Path, size: int = SIZE, seed: int = 0) -> Path:
    """kind: enhancer | denoiser | yunet | pipeline; writes and returns path."""
    import onnx
    import types
    H = types.SimpleNamespace(helper=onnx.helper, numpy_helper=onnx.numpy_helper, TensorProto=onnx.TensorProto)
    comp = {"enhancer": 1, "enh": 1, "denoiser": 2, "den": 2}  # same weights alone or in the pipeline
    inp = onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, size, size])
    nodes, inits = [], []
    x = "input"
    if kind in ("enhancer", "denoiser", "pipeline"):
        for p in (["enh", "den"] if kind == "pipeline" else [kind]):
            n, i, x = _restoration_nodes(p, x, np.random.default_rng([seed, comp[p]]), H)
            nodes, inits = nodes + n, inits + i
    if kind in ("yunet", "pipeline"):
        if kind == "pipeline":
            inits.append(onnx.numpy_helper.from_array(np.float32(255.0), "pix"))
            nodes.append(onnx.helper.make_node("Mul", [x, "pix"], ["det_in"]))
            x = "det_in"
        n, i, outputs = _detector_nodes(x, np.random.default_rng([seed, 3]), H)
        nodes, inits = nodes + n, inits + i
    else:
        outputs = [onnx.helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, [1, 3, size, size])]
    graph = onnx.helper.make_graph(nodes, kind, [inp], outputs, inits)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_dataset(root: Path, n: int = 4, size: int = SIZE) -> Path:
    """A test split of n images (all five variants) with one labelled face each."""
    import cv2
    rng = np.random.default_rng(1)
    d = root / "test"
    (d / "images").mkdir(parents=True, exist_ok=True)
    recs = []
    for i in range(n):
        clean = (rng.random((size, size, 3)) * 255).astype(np.uint8)
        imgs = {"0": clean, "1": clean // 3, "2": clean // 6,
                "0_noisy": np.clip(clean + rng.normal(0, 10, clean.shape), 0, 255).astype(np.uint8)}
        imgs["1_noisy"] = imgs["0_noisy"] // 3
        paths = {}
        for v, im in imgs.items():
            paths[v] = f"images/test_{i:05d}_{v}.png"
            cv2.imwrite(str(d / paths[v]), im)
        recs.append({"id": f"test_{i:05d}", "width": size, "height": size, "images": paths,
                     "faces": [{"box": [12.0, 12.0, 40.0, 44.0],
                                "landmarks": [[20, 24], [32, 24], [26, 30], [21, 37], [31, 37]]}]})
    (d / "index.json").write_text(json.dumps(recs))
    return root


ROLE_OF = {"enhancer": "enhancer", "denoiser": "denoiser", "yunet": "detector", "pipeline": "pipeline"}


def rec(file: str, role: str, precision: str = "fp32", metrics: dict | None = None, cost: dict | None = None,
        chain: str | None = None) -> dict:
    """An artifact record as shared.artifacts.make_record writes it."""
    suffix = Path(file).suffix.lstrip(".")
    return {"file": file, "role": role, "precision": precision, "format": suffix or "dir",
            "chain": chain if chain is not None else (str(Path(file).parent) if "/" in file else "."),
            "label": None, "metrics": metrics, "cost": cost}


def model_recs(folder: str, kinds=("enhancer", "denoiser", "yunet", "pipeline"), precision: str = "fp32",
               metrics: dict | None = None) -> list[dict]:
    """Records of the files build_model wrote as ``<folder>/<kind>.onnx`` (folder "" for the stage dir)."""
    pre = f"{folder}/" if folder else ""
    return [rec(f"{pre}{k}.onnx", ROLE_OF[k], precision, (metrics or {}).get(k)) for k in kinds]


def manifest(stage: str, eval_cfg: dict | None = None, metrics: dict | None = None, skipped=None,
             artifacts: list[dict] | None = None, chains: dict | None = None) -> dict:
    return {"stage": stage, "config": {"seed": 0, stage: {}, **({"eval": eval_cfg} if eval_cfg else {})},
            "metrics": metrics or {}, "skipped": skipped, "artifacts": artifacts or [], "chains": chains or {}}


@pytest.fixture
def eval_cfg():
    return {"variant": "1_noisy", "score_thr": 0.02, "nms_iou": 0.45, "iou_thr": 0.5, "limit": None, "batch": 8}


@pytest.fixture
def run_dir(tmp_path, eval_cfg):
    """<run>/dataset (4 images), <run>/train (four tiny ONNX files + manifest)."""
    run = tmp_path / "run"
    write_dataset(run / "dataset")
    (run / "dataset" / "manifest.json").write_text(json.dumps(manifest("dataset")))
    for k in ("enhancer", "denoiser", "yunet", "pipeline"):
        build_model(k, run / "train" / f"{k}.onnx")
    (run / "train" / "manifest.json").write_text(json.dumps(manifest("train", eval_cfg, artifacts=model_recs(""))))
    return run


JOINT, INDEP = "prune-joint_l2_r50", "prune-independent_l2_r50"


def write_prune_and_quantize(run: Path, eval_cfg: dict, roles: bool = True) -> dict:
    """Fake prune + quantize outputs in the layout of stages/prune and stages/quantize: two pruned
    variants (joint, independent) with their four ONNX files; per candidate quantize's pipeline
    ``fp32.onnx`` and, for the joint one, ``pipeline/joint_qat.onnx``, for the independent one the
    three ``<model>/qat.onnx``; ``quantize/metrics.json`` with rows, candidates (``role`` when
    ``roles``), joint_vs_independent and int8_vs_fp32 carrying intervals.  Returns that metrics dict."""
    for v, seed in (("joint_l2_r50", 3), ("independent_l2_r50", 4)):
        for k in ("enhancer", "denoiser", "yunet", "pipeline"):
            build_model(k, run / "prune" / "variants" / v / f"{k}.onnx", seed=seed)
    (run / "prune" / "manifest.json").write_text(json.dumps(manifest("prune", eval_cfg, artifacts=[
        r for v in ("joint_l2_r50", "independent_l2_r50") for r in model_recs(f"variants/{v}")])))
    q = run / "quantize"
    rows, cands = [], {}
    for cand, v, role in ((JOINT, "joint_l2_r50", "jmmc"), (INDEP, "independent_l2_r50", "independent")):
        build_model("pipeline", q / cand / "pipeline" / "fp32.onnx", seed=3 if role == "jmmc" else 4)
        rows.append({"candidate": cand, "model": "pipeline", "method": "fp32", "bits": "FP32", "seed": 0,
                     "split": "test", "onnx_file": f"{cand}/pipeline/fp32.onnx", "sim": {"ap": 0.3}, "onnx": {"ap": 0.3}})
        cands[cand] = {"stage": "prune", "kind": v, "folder": cand, "dir": f"prune/variants/{v}",
                       "made_by": {"stage": "prune", "mode": "joint" if role == "jmmc" else "independent"},
                       **({"role": role} if roles else {})}
    build_model("pipeline", q / JOINT / "pipeline" / "joint_qat.onnx", seed=7)
    rows.append({"candidate": JOINT, "model": "pipeline", "method": "joint_qat", "bits": "W8A8", "seed": 0,
                 "split": "test", "onnx_file": f"{JOINT}/pipeline/joint_qat.onnx", "sim": {"ap": 0.3}, "onnx": {"ap": 0.3}})
    for model, kind in (("enhancer", "enhancer"), ("denoiser", "denoiser"), ("detector", "yunet")):
        build_model(kind, q / INDEP / model / "qat.onnx", seed=8)
        rows.append({"candidate": INDEP, "model": model, "method": "qat(ptq:none)", "bits": "W8A8", "seed": 0,
                     "split": "test", "onnx_file": f"{INDEP}/{model}/qat.onnx",
                     "sim": {"psnr": 20.0} if model != "detector" else {"ap": 0.2},
                     "onnx": {"psnr": 20.0} if model != "detector" else {"ap": 0.2}})
    rows.append({"candidate": INDEP, "model": "pipeline", "method": "independent_qat_chained", "bits": "W8A8",
                 "seed": 0, "split": "test", "onnx_file": "chain of the three qat.onnx", "onnx": {"ap": 0.25}})
    iv = {"value": 0.02, "lo": -0.05, "hi": 0.09, "n_boot": 100, "n_images": 4}
    metrics = {"rows": rows, "candidates": cands,
               "joint_vs_independent": {JOINT: {"split": "test", "ap_diff": {**iv, "a": "joint_qat",
                                                                            "b": "independent_qat_chained"}}},
               "int8_vs_fp32": {JOINT: {"split": "test", "int8": "joint_qat", "int8_file": f"{JOINT}/pipeline/joint_qat.onnx",
                                        "fp32_file": f"{JOINT}/pipeline/fp32.onnx",
                                        "int8_ap": {"value": 0.3, "lo": 0.2, "hi": 0.4},
                                        "fp32_ap": {"value": 0.31, "lo": 0.21, "hi": 0.41},
                                        "ap_diff": {"value": -0.01, "lo": -0.04, "hi": 0.02}}},
               "splits": {"reported": "test", "selected_on": "val"}}
    (q / "metrics.json").write_text(json.dumps(metrics))
    recs = [rec(r["onnx_file"], "pipeline" if r["model"] == "pipeline" else r["model"],
                "fp32" if r["bits"] == "FP32" else "int8", r["onnx"]) for r in rows if (q / r["onnx_file"]).is_file()]
    (q / "manifest.json").write_text(json.dumps(manifest("quantize", eval_cfg, artifacts=recs)))
    return metrics


def write_photos(run: Path, skipped: str | None = None) -> None:
    """A fake photos stage (stages/photos/steps.py layout): metrics.json + photos.png."""
    d = run / "photos"
    d.mkdir(parents=True, exist_ok=True)
    (d / "manifest.json").write_text(json.dumps(manifest("photos", skipped=skipped)))
    if skipped:
        return
    import cv2
    cv2.imwrite(str(d / "photos.png"), np.full((20, 30, 3), 128, np.uint8))
    res = lambda r, p, ap: {"n_ref_faces": 5, "tp": 2, "fp": 1, "recall": r, "precision": p, "ap": ap}  # noqa: E731
    arts = [{"artifact": "train/pipeline.onnx", "kind": "fp32", "label": "FP32", "precision": "fp32",
             "results": {"clean": res(0.8, 0.9, 0.75), "degraded": res(0.4, 0.5, 0.3)}},
            {"artifact": "quantize/x/pipeline/joint_qat.onnx", "kind": "quantized", "label": "JMMC INT8",
             "precision": "int8 (QDQ)", "results": {"clean": res(0.6, 0.7, 0.55), "degraded": res(0.2, None, 0.1)}}]
    (d / "metrics.json").write_text(json.dumps({
        "note": "OUTSIDE THE TRAINING DOMAIN: test note", "outside_training_domain": True,
        "reference": {"labeller": "facenet-pytorch MTCNN", "photos": {"astronaut": {}, "lfw": {}}},
        "matching": {"score_thr": 0.5}, "artifacts": arts}))

"""The evaluation protocol end to end: an oracle system scores perfectly, a blind one scores zero,
and torch modules, callables and ONNX files are all accepted."""
import json

import cv2
import numpy as np
import pytest
import torch

from shared.data import DataError, load_split
from shared.evaluation import Protocol, as_fn, evaluate_detection, evaluate_restoration
from shared.models.yunet import STRIDES

FACES = [[10.0, 12.0, 42.0, 50.0], [70.0, 20.0, 110.0, 66.0]]


def landmarks(b):
    x1, y1, x2, y2 = b
    w, h = x2 - x1, y2 - y1
    return [[x1 + .3 * w, y1 + .4 * h], [x1 + .7 * w, y1 + .4 * h], [x1 + .5 * w, y1 + .6 * h],
            [x1 + .35 * w, y1 + .8 * h], [x1 + .65 * w, y1 + .8 * h]]


@pytest.fixture
def split(tmp_path):
    d = tmp_path / "test"
    (d / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    recs = []
    for i in range(2):
        clean = rng.integers(0, 255, (128, 128, 3)).astype(np.uint8)
        imgs = {}
        for v, img in (("0", clean), ("1_noisy", (clean * 0.3).astype(np.uint8))):
            cv2.imwrite(str(d / "images" / f"{i}_{v}.png"), img)
            imgs[v] = f"images/{i}_{v}.png"
        recs.append({"id": str(i), "images": imgs, "faces": [{"box": b, "landmarks": landmarks(b)} for b in FACES]})
    (d / "index.json").write_text(json.dumps(recs))
    return load_split(tmp_path, "test")


def oracle(gts_per_image, size=128):
    """A 'system' whose YuNet outputs decode exactly to the given faces (stride 8 cells)."""
    def fn(x):
        n = len(x)
        outs = {k: [] for k in ("cls", "obj", "bbox", "kps")}
        for s in STRIDES:
            cells = (size // s) ** 2
            cls, obj = np.zeros((n, cells, 1), np.float32), np.zeros((n, cells, 1), np.float32)
            bbox, kps = np.zeros((n, cells, 4), np.float32), np.zeros((n, cells, 10), np.float32)
            if s == 8:
                for b in range(n):
                    for g in gts_per_image:
                        x1, y1, x2, y2 = g[:4]
                        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
                        col, row = int(cx // s), int(cy // s)
                        c = row * (size // s) + col
                        cls[b, c] = obj[b, c] = 0.9
                        bbox[b, c] = [cx / s - col, cy / s - row, np.log((x2 - x1) / s), np.log((y2 - y1) / s)]
                        kps[b, c] = (np.asarray(landmarks(g)) / s - [col, row]).reshape(10)
            for k, v in zip(("cls", "obj", "bbox", "kps"), (cls, obj, bbox, kps)):
                outs[k].append(v)
        return outs["cls"] + outs["obj"] + outs["bbox"] + outs["kps"]
    return fn


def test_oracle_is_perfect_and_blind_is_zero(split):
    proto = Protocol()
    m = evaluate_detection(oracle(FACES), split, proto)
    assert m["ap"] == pytest.approx(1.0) and m["missed"] == 0 and m["n_gt"] == 4
    assert m["nme"] < 1e-3 and m["top_box_iou"] > 0.99 and m["variant"] == "1_noisy"
    blind = evaluate_detection(oracle([]), split, proto)
    assert blind["ap"] == 0.0 and blind["missed"] == 4


def test_limit_and_batches(split):
    m = evaluate_detection(oracle(FACES), split, Protocol(limit=1, batch=1))
    assert m["n_images"] == 1 and m["n_gt"] == 2


def test_restoration_identity_equals_input_baseline(split):
    m = evaluate_restoration(lambda x: x, split, "1_noisy", "0")
    assert m["psnr"] == pytest.approx(m["psnr_input"]) and m["ssim"] == pytest.approx(m["ssim_input"])
    perfect = evaluate_restoration(lambda x: np.stack([x[0] * 0 + 1] * len(x)), split, "1_noisy", "0")
    assert perfect["psnr"] != perfect["psnr_input"]


def test_torch_module_and_onnx_give_the_same_numbers(split, tmp_path):
    from shared.models.export import export_onnx
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    path = export_onnx(conv, tmp_path / "c.onnx", (1, 3, 128, 128), ["output"])
    t = evaluate_restoration(conv, split, "1_noisy", "0")
    o = evaluate_restoration(path, split, "1_noisy", "0")
    assert t["psnr"] == pytest.approx(o["psnr"], abs=1e-3)
    with pytest.raises(TypeError, match="cannot evaluate"):
        as_fn(42)


def test_missing_split_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="index.json: missing"):
        load_split(tmp_path, "test")

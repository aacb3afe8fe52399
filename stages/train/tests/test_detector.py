"""YuNet through mmdet: the shared loss, the registry, the labelv2 dataset, a tiny training."""
from __future__ import annotations

import logging
import math

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("mmdet")

from shared.detector_loss import YuNetLoss, eiou_loss  # noqa: E402
from shared.models.yunet import YuNet  # noqa: E402
from shared.models.yunet_decode import decode  # noqa: E402

SIZE = 64
STRIDES = (8, 16, 32)
GT_BOX = torch.tensor([[16.0, 12.0, 44.0, 48.0]])
GT_KPS = torch.tensor([[[24.0, 24.0], [36.0, 24.0], [30.0, 32.0], [25.0, 40.0], [35.0, 40.0]]])


def perfect_outputs(box=GT_BOX[0], kps=GT_KPS[0], logit=0.0):
    """12 raw outputs where EVERY prior predicts exactly ``box`` and ``kps``."""
    cls, obj, bbox, lms = [], [], [], []
    for s in STRIDES:
        n = SIZE // s
        row, col = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        px, py = (col.reshape(-1) * s).float(), (row.reshape(-1) * s).float()
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        b = torch.stack([(cx - px) / s, (cy - py) / s,
                         torch.full_like(px, math.log((box[2] - box[0]) / s)),
                         torch.full_like(px, math.log((box[3] - box[1]) / s))], -1)
        k = torch.stack([torch.stack([(kps[i, 0] - px) / s, (kps[i, 1] - py) / s], -1)
                         for i in range(5)], 1).reshape(-1, 10)
        cls.append(torch.full((1, n * n, 1), logit))
        obj.append(torch.full((1, n * n, 1), logit))
        bbox.append(b[None])
        lms.append(k[None])
    return [t.clone().requires_grad_(True) for t in cls + obj + bbox + lms]


def shifted(outs, dx=0.5):
    outs = [t.detach().clone() for t in outs]
    for t in outs[6:]:  # bbox and kps: move every prediction right by dx * stride
        t[..., 0::2] += dx
    return [t.requires_grad_(True) for t in outs]


# -- (a) the loss ----------------------------------------------------------------------------
def test_encoding_matches_opencv_decode():
    outs = perfect_outputs(logit=-20.0)
    outs[0].data[0, 10] = 20.0  # one confident cell at stride 8
    outs[3].data[0, 10] = 20.0
    faces = decode([t.sigmoid() if i < 6 else t for i, t in enumerate(outs)], SIZE,
                   score_thr=0.5)[0]
    assert faces.shape == (1, 15)
    np.testing.assert_allclose(faces[0, :4], GT_BOX[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(faces[0, 4:14], GT_KPS[0].reshape(-1).numpy(), atol=1e-4)


def test_perfect_prediction_has_no_box_or_landmark_loss():
    loss = YuNetLoss()
    good = loss(perfect_outputs(), [GT_BOX], [GT_KPS], SIZE)
    bad = loss(shifted(perfect_outputs()), [GT_BOX], [GT_KPS], SIZE)
    assert good["num_pos"] >= 1
    assert all(torch.isfinite(v) for k, v in good.items() if k != "num_pos")
    assert float(good["loss_bbox"]) < 1e-6 and float(good["loss_kps"]) < 1e-6
    assert float(bad["loss_bbox"]) > 0.1 and float(bad["loss_kps"]) > 0.01
    total = sum(float(good[k]) for k in ("loss_cls", "loss_bbox", "loss_obj", "loss_kps"))
    assert float(good["loss"]) == pytest.approx(total, rel=1e-6)


def test_weights_scale_terms():
    outs = shifted(perfect_outputs())
    base = YuNetLoss()(outs, [GT_BOX], [GT_KPS], SIZE)
    double = YuNetLoss(w_bbox=10.0, w_kps=2 * YuNetLoss().w_kps, w_cls=2.0, w_obj=2.0)(outs, [GT_BOX], [GT_KPS], SIZE)
    for k in ("loss_bbox", "loss_kps", "loss_cls", "loss_obj"):
        assert float(double[k]) == pytest.approx(2 * float(base[k]), rel=1e-5), k


def test_gradients_reach_every_output_group():
    outs = shifted(perfect_outputs())
    YuNetLoss()(outs, [GT_BOX], [GT_KPS], SIZE)["loss"].backward()
    for group in range(4):  # cls, obj, bbox, kps
        grads = [outs[group * 3 + i].grad for i in range(3)]
        assert any(g is not None and float(g.abs().sum()) > 0 for g in grads), group


def test_absent_landmarks_are_ignored():
    loss = YuNetLoss()
    absent = torch.full_like(GT_KPS, -1.0)
    outs = shifted(perfect_outputs())
    res = loss(outs, [GT_BOX], [absent], SIZE)
    assert float(res["loss_kps"]) == 0.0 and float(res["loss_bbox"]) > 0
    res["loss"].backward()
    assert all(float(outs[9 + i].grad.abs().sum()) == 0 for i in range(3))
    # one absent point: moving its prediction changes nothing; moving a present one does
    partial = GT_KPS.clone()
    partial[0, 2] = -1.0
    outs = perfect_outputs()
    ref = float(loss(outs, [GT_BOX], [partial], SIZE)["loss_kps"])
    nose = [t.detach().clone() for t in outs]
    eye = [t.detach().clone() for t in outs]
    for i in range(3):
        nose[9 + i][..., 4:6] += 3.0
        eye[9 + i][..., 0:2] += 3.0
    assert float(loss(nose, [GT_BOX], [partial], SIZE)["loss_kps"]) == pytest.approx(ref, abs=1e-7)
    assert float(loss(eye, [GT_BOX], [partial], SIZE)["loss_kps"]) > ref + 0.1


def test_images_without_faces_and_batches():
    outs = [torch.cat([t.detach(), t.detach()]).requires_grad_(True) for t in perfect_outputs()]
    res = YuNetLoss()(outs, [GT_BOX, torch.zeros(0, 4)], [GT_KPS, None], SIZE)
    assert all(torch.isfinite(v) for k, v in res.items() if k != "num_pos")
    empty = YuNetLoss()(perfect_outputs(), [torch.zeros(0, 4)], None, SIZE)
    assert empty["num_pos"] == 0 and float(empty["loss_bbox"]) == 0 and float(empty["loss_obj"]) > 0
    as_mmdet = YuNetLoss()(perfect_outputs(), [torch.zeros(0, 4)], [torch.zeros(0, 5, 3)], SIZE)
    assert float(as_mmdet["loss"]) == pytest.approx(float(empty["loss"]))
    with pytest.raises(ValueError, match="shape"):
        YuNetLoss()(perfect_outputs(), [GT_BOX], [GT_KPS], 96)


def test_eiou_is_zero_on_match_and_grows_when_disjoint():
    t = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    p = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], [20.0, 0.0, 30.0, 10.0]],
                     requires_grad=True)
    v = eiou_loss(p, t)
    assert float(v[0]) < 1e-9 and 0 < float(v[1]) < float(v[2])
    v[2].backward()
    assert float(p.grad[2].abs().sum()) > 0  # disjoint boxes still get a gradient


# -- (b) the mmdet registry ------------------------------------------------------------------
MODEL_CFG = dict(
    type="YuNet",
    backbone=dict(type="YuNetBackbone", stage_channels=[[3, 16, 16], [16, 64], [64, 64],
                                                        [64, 64], [64, 64], [64, 64]],
                  downsample_idx=[0, 2, 3, 4], out_idx=[3, 4, 5]),
    neck=dict(type="TFPN", in_channels=[64, 64, 64]),
    bbox_head=dict(type="YuNetHead", in_channels=64, feat_channels=64, shared_stacked_convs=1,
                   loss=dict(w_bbox=5.0)),
    train_cfg=dict(assigner=dict(type="SimOTAAssigner", center_radius=2.5)),
    test_cfg=dict(score_thr=0.02, nms_iou=0.45))


def test_registry_builds_the_shared_yunet():
    from mmcv import Config
    from mmdet.models import build_detector

    from stages.train import mmdet_registry

    det = build_detector(Config(dict(model=MODEL_CFG)).model)
    assert isinstance(det, mmdet_registry.YuNetDetector)
    ref = YuNet().state_dict()
    got = det.state_dict()
    assert list(got) == list(ref)
    assert all(got[k].shape == ref[k].shape for k in ref)
    det.init_weights()
    plain = det.to_yunet().eval()
    det.eval()
    x = torch.rand(2, 3, SIZE, SIZE) * 255
    with torch.no_grad():
        maps = det.bbox_head(det.extract_feat(x))
        flat = [mmdet_registry.yunet._flat(t) for g in maps for t in g]
        for a, b in zip(flat, plain.forward_train(x)):
            torch.testing.assert_close(a, b)
        res = det.simple_test(x, [dict(batch_input_shape=(SIZE, SIZE), scale_factor=[1] * 4)] * 2)
    assert len(res) == 2 and res[0][0].shape[1] == 5
    # the detector's training forward goes through the shared loss
    det.train()
    meta = [dict(img_shape=(SIZE, SIZE, 3))]
    losses = det.forward_train(x[:1], meta, [GT_BOX], [torch.zeros(1, dtype=torch.long)],
                               [torch.cat([GT_KPS, torch.ones(1, 5, 1)], -1)])
    assert set(losses) == {"loss_cls", "loss_bbox", "loss_obj", "loss_kps", "num_pos"}


# -- (c) the dataset -------------------------------------------------------------------------
LABELS = """# images/a_0.png 64 64
10 12 40 50 18 25 1.0 32 25 1.0 25 33 1.0 19 42 1.0 31 42 1.0
# images/b_0.png 64 64
5 5 20 25 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1
1 2 3 4 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1
# images/c_0.png 64 64
"""


def write_split(root, labels=LABELS, variants=("0", "1_noisy")):
    (root / "images").mkdir(parents=True, exist_ok=True)
    for line in labels.splitlines():
        if line.startswith("#"):
            name = line.split()[1]
            for v in variants:
                cv2.imwrite(str(root / name.replace("_0.png", f"_{v}.png")),
                            np.zeros((64, 64, 3), np.uint8))
    (root / "labels.txt").write_text(labels)
    return root / "labels.txt"


def test_dataset_parses_labelv2_and_variants(tmp_path):
    from stages.train.mmdet_registry import RetinaFaceDataset

    ann = write_split(tmp_path)
    ds = RetinaFaceDataset(ann_file=str(ann), img_prefix=str(tmp_path) + "/", pipeline=[],
                           variant="1_noisy")
    assert len(ds) == 3 and ds.data_infos[0]["filename"] == "images/a_1_noisy.png"
    a, b, c = (ds.get_ann_info(i) for i in range(3))
    assert a["bboxes"].shape == (1, 4) and a["keypointss"].shape == (1, 5, 3)
    np.testing.assert_allclose(a["keypointss"][0, 0], [18, 25, 1])
    assert b["bboxes"].shape == (2, 4) and (b["keypointss"][..., 2] == 0).all()
    assert (b["keypointss"][..., :2] == -1).all()
    assert c["bboxes"].shape == (0, 4) and c["keypointss"].shape == (0, 5, 3)
    ds = RetinaFaceDataset(ann_file=str(ann), img_prefix=str(tmp_path) + "/", pipeline=[],
                           keep_empty=False)
    assert len(ds) == 2 and ds.data_infos[0]["filename"] == "images/a_0.png"


@pytest.mark.parametrize("bad, msg", [
    ("10 12 40 50 18 25 1.0", "expected 19"),
    ("10 12 x 50", "expected numbers"),
    ("40 12 10 50", "no area"),
])
def test_dataset_errors_name_file_and_line(tmp_path, bad, msg):
    from stages.train.mmdet_registry import RetinaFaceDataset

    lines = LABELS.splitlines()
    lines[3] = bad
    ann = write_split(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"labels\.txt:4: .*{msg}"):
        RetinaFaceDataset(ann_file=str(ann), img_prefix=str(tmp_path) + "/", pipeline=[])


def test_missing_variant_image_is_named(tmp_path):
    from stages.train.mmdet_registry import RetinaFaceDataset

    ann = write_split(tmp_path, variants=("0",))
    with pytest.raises(ValueError, match=r"labels\.txt:1: image .*a_1\.png not found"):
        RetinaFaceDataset(ann_file=str(ann), img_prefix=str(tmp_path) + "/", pipeline=[],
                          variant="1")


def test_pipeline_resizes_and_flips_landmarks(tmp_path):
    from mmdet.datasets.pipelines import Compose

    from stages.train import mmdet_registry  # noqa: F401

    img = np.zeros((128, 64, 3), np.uint8)  # h 128, w 64 -> fits 64x64 at scale 0.5
    kps = np.array([[[10, 20, 1], [30, 20, 1], [20, 30, 1], [12, 40, 1], [28, 40, 1]]], np.float32)
    results = dict(img=img, img_shape=img.shape, ori_shape=img.shape, img_fields=["img"],
                   filename="x", ori_filename="x", bbox_fields=["gt_bboxes"],
                   gt_bboxes=np.array([[4, 8, 36, 48]], np.float32),
                   gt_labels=np.zeros(1, np.int64), gt_keypointss=kps.copy())
    pipe = Compose([dict(type="ResizeFaces", size=(64, 64)),
                    dict(type="FaceRandomFlip", flip_ratio=1.0),
                    dict(type="Normalize", mean=[0.0] * 3, std=[1.0] * 3, to_rgb=False),
                    dict(type="Pad", size=(64, 64), pad_val=dict(img=0)),
                    dict(type="FaceFormatBundle"),
                    dict(type="Collect", keys=["img", "gt_bboxes", "gt_labels", "gt_keypointss"])])
    out = pipe(results)
    assert tuple(out["img"].data.shape) == (3, 64, 64)
    k = out["gt_keypointss"].data.numpy()[0]
    w = 32  # resized image width
    np.testing.assert_allclose(k[0], [w - 15, 10, 1])  # was point 1 (30, 20) * 0.5, mirrored
    np.testing.assert_allclose(k[1], [w - 5, 10, 1])
    np.testing.assert_allclose(k[3], [w - 14, 20, 1])  # mouth corners swap too
    np.testing.assert_allclose(out["gt_bboxes"].data.numpy()[0], [w - 18, 4, w - 2, 24])


# -- (d) end to end --------------------------------------------------------------------------
def synth_split(root, n=8, size=64, seed=0):
    """Bright ellipses ("faces") with landmarks on a dark noisy background, labelv2."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    lines = []
    for i in range(n):
        img = rng.integers(0, 40, (size, size, 3)).astype(np.uint8)
        fw, fh = rng.integers(18, 30), rng.integers(22, 34)
        x1, y1 = rng.integers(2, size - fw - 2), rng.integers(2, size - fh - 2)
        cx, cy = x1 + fw / 2, y1 + fh / 2
        cv2.ellipse(img, (int(cx), int(cy)), (int(fw / 2), int(fh / 2)), 0, 0, 360,
                    (200, 210, 220), -1)
        pts = [(cx - fw / 5, cy - fh / 6), (cx + fw / 5, cy - fh / 6), (cx, cy),
               (cx - fw / 6, cy + fh / 4), (cx + fw / 6, cy + fh / 4)]
        for x, y in pts[:2]:
            cv2.circle(img, (int(x), int(y)), 2, (30, 30, 30), -1)
        for v in ("0", "1_noisy"):
            cv2.imwrite(str(root / "images" / f"s{i}_{v}.png"), img if v == "0" else img // 2)
        lines.append(f"# images/s{i}_0.png {size} {size}")
        lines.append(" ".join(f"{v:.1f}" for v in (x1, y1, x1 + fw, y1 + fh)) + " " +
                     " ".join(f"{x:.1f} {y:.1f} 1.0" for x, y in pts))
    (root / "labels.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def no_epoch_pause(monkeypatch):
    """mmcv's EpochBasedRunner sleeps 2 s per epoch; not needed here."""
    import mmcv.runner.epoch_based_runner as ebr
    monkeypatch.setattr(ebr.time, "sleep", lambda s: None)


def test_train_detector_end_to_end(tmp_path, no_epoch_pause):
    from stages.train.detector_mmdet import train_detector

    synth_split(tmp_path / "data" / "train")
    out = tmp_path / "out"
    cfg = dict(epochs=2, batch_size=4, lr=0.005, weight_decay=0.0, optimizer="adamw",
               warmup_iters=0, lr_schedule="cosine", input_size=[64, 64],
               train_variants=["0", "1_noisy"], workers=0, amp=False, seed=0, device="cpu",
               log_interval=1)
    model, history = train_detector(tmp_path / "data", out, cfg, logging.getLogger("test.det"))
    assert isinstance(model, YuNet)
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(h["images"] == 16 for h in history)
    assert all(math.isfinite(h["loss"]) for h in history)
    assert history[-1]["loss"] < history[0]["loss"]
    assert (out / "epoch_2.pth").is_file() and (out / "yunet_mmdet_config.py").is_file()
    assert (out / "history.json").is_file() and list(out.glob("*.log.json"))
    ckpt = torch.load(out / "epoch_2.pth", map_location="cpu", weights_only=False)
    assert set(ckpt["state_dict"]) == set(YuNet().state_dict())
    assert "time" not in ckpt["meta"] and ckpt["meta"]["epoch"] == 2      # no clock in the outputs
    assert "work_dir = 'out'" in (out / "yunet_mmdet_config.py").read_text()  # nor the temp dir it ran in
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 64, 64) * 255)
    assert len(outs) == 12 and all(torch.isfinite(t).all() for t in outs)


def test_train_detector_bf16_autocast_one_epoch(tmp_path, no_epoch_pause):
    from stages.train.detector_mmdet import train_detector

    synth_split(tmp_path / "data" / "train", n=2)
    cfg = dict(epochs=1, batch_size=2, lr=0.005, optimizer="adamw", warmup_iters=0,
               lr_schedule="cosine", input_size=[32, 32], workers=0, amp=True, device="cpu")
    _, history = train_detector(tmp_path / "data", tmp_path / "out", cfg, logging.getLogger("t"))
    assert math.isfinite(history[0]["loss"])


def test_train_detector_rejects_bad_config(tmp_path):
    from stages.train.detector_mmdet import train_detector

    synth_split(tmp_path / "data" / "train", n=1)
    log = logging.getLogger("t")
    with pytest.raises(KeyError, match="unknown cfg keys"):
        train_detector(tmp_path / "data", tmp_path / "o", {"epoch": 1}, log)
    with pytest.raises(ValueError, match="multiples of 32"):
        train_detector(tmp_path / "data", tmp_path / "o", {"input_size": [60, 64]}, log)

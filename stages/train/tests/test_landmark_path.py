"""The landmark path end to end on a tiny set: labelv2 labels -> the loss's targets -> the
outputs that meet them -> OpenCV's decode -> NME.  A wrong order, scale or offset anywhere on
the way shows up as a non-zero NME (the demo's NME of ~0.5 was under-training, not this path)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("mmdet")

from shared.detector_loss import YuNetLoss  # noqa: E402
from shared.metrics.detection import landmark_nme  # noqa: E402
from shared.models.yunet_decode import decode  # noqa: E402
from stages.train.tests.test_detector import SIZE, perfect_outputs, shifted  # noqa: E402

LABELS = "# images/a_0.png 64 64\n16 12 44 48 24 24 1.0 36 24 1.0 30 32 1.0 25 40 1.0 35 40 1.0\n"


@pytest.fixture
def face(tmp_path):
    from stages.train.mmdet_registry import read_labels
    (tmp_path / "labels.txt").write_text(LABELS)
    info = read_labels(tmp_path / "labels.txt", check_images=False)[0]["ann"]
    box = torch.from_numpy(info["bboxes"])
    kps = torch.from_numpy(info["keypointss"])            # [1, 5, 3] with visibility
    gt = np.concatenate([info["bboxes"], info["keypointss"][:, :, :2].reshape(1, 10)], 1)
    return box, kps, gt


def _decoded(outs):
    outs = [t.detach().clone() for t in outs]
    outs[0][0, 10] = 20.0   # one confident cell at stride 8 (cls and obj)
    outs[3][0, 10] = 20.0
    return decode([t.sigmoid() if i < 6 else t for i, t in enumerate(outs)], SIZE, score_thr=0.5)


def test_labels_to_targets_to_decode_to_nme(face):
    box, kps, gt = face
    outs = perfect_outputs(box[0], kps[0, :, :2], logit=-20.0)
    loss = YuNetLoss()(outs, [box], [kps], SIZE)
    assert float(loss["loss_kps"]) < 1e-6          # the label's landmarks are the loss's targets
    dets = _decoded(outs)
    assert landmark_nme(dets, [gt]) == pytest.approx(0.0, abs=1e-5)


def test_a_known_offset_gives_the_known_nme(face):
    box, kps, gt = face
    dets = _decoded(shifted(perfect_outputs(box[0], kps[0, :, :2], logit=-20.0), dx=0.5))
    iod = float(np.linalg.norm(gt[0, 4:6] - gt[0, 6:8]))   # 12 px between the eyes
    # every point moved 0.5 stride (4 px at stride 8) to the right; the box IoU stays >= 0.5
    assert landmark_nme(dets, [gt]) == pytest.approx(4.0 / iod, rel=1e-4)

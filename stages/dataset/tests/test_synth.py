"""Procedural scenes: determinism, label geometry, config ranges."""
import numpy as np

from stages.dataset.face import render_face
from stages.dataset.synth import render_scene, rng_for


def _scene(cfg, seed, i=0, split="train", h=96, w=128):
    return render_scene(rng_for(seed, split, i, "scene"), h, w, cfg)


def test_same_seed_same_scene(cfg):
    a, fa = _scene(cfg, 3)
    b, fb = _scene(cfg, 3)
    assert a.dtype == np.uint8 and a.shape == (96, 128, 3)
    assert np.array_equal(a, b) and fa == fb


def test_other_seed_split_or_index_differs(cfg):
    a, _ = _scene(cfg, 3)
    for other in (_scene(cfg, 4)[0], _scene(cfg, 3, i=1)[0], _scene(cfg, 3, split="test")[0]):
        assert not np.array_equal(a, other)


def test_labels_geometry_and_ranges(cfg):
    cfg = {**cfg, "faces_per_image": {"min": 1, "max": 3}, "face_size": {"min": 16, "max": 48}}
    n_faces = 0
    for i in range(25):
        img, faces = _scene(cfg, 0, i)
        assert 1 <= len(faces) <= 3
        for f in faces:
            x1, y1, x2, y2 = f["box"]
            assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 96, f
            assert len(f["landmarks"]) == 5
            for x, y in f["landmarks"]:
                assert x1 <= x <= x2 and y1 <= y <= y2, (f, x, y)
            # box height follows face_size (rotation can grow the box up to ~1.3x)
            assert 16 * 0.9 <= y2 - y1 <= 48 * 1.35
        n_faces += len(faces)
    assert n_faces >= 25


def test_zero_faces_allowed(cfg):
    cfg = {**cfg, "faces_per_image": {"min": 0, "max": 0}}
    _, faces = _scene(cfg, 1)
    assert faces == []


def test_face_landmark_order_and_yaw():
    """RetinaFace order: image-left eye first, nose between the eyes, mouth below; yaw moves the nose."""
    straight = render_face(np.random.default_rng(0), 60, 0.0)
    lm = straight.landmarks
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]
    assert lm[0, 0] < lm[2, 0] < lm[1, 0]
    assert lm[2, 1] > lm[0, 1] and lm[3, 1] > lm[2, 1]
    turned = render_face(np.random.default_rng(0), 60, 30.0)
    assert turned.landmarks[2, 0] - lm[2, 0] > 5  # the nose tip swings toward the turn
    assert straight.alpha.max() <= 1.0 and straight.alpha.min() >= 0.0

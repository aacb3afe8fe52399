"""The reference labeller and the photos: offline, from the installed wheels only."""
import os

import numpy as np
import pytest

from shared.metrics.detection import box_iou
from stages.photos.photos import (PhotoError, bundled_files, letterbox, load_mtcnn, load_photos, mtcnn_faces,
                                  reference_boxes)

ASTRONAUT_FACE = [181, 62, 268, 172]     # MTCNN's box on skimage's astronaut (Eileen Collins), measured


@pytest.fixture(scope="module")
def mtcnn():
    return load_mtcnn()


def test_mtcnn_weights_ship_in_the_wheel_and_find_the_astronaut(mtcnn):
    import facenet_pytorch
    wdir = os.path.join(os.path.dirname(facenet_pytorch.__file__), "data")
    assert all(os.path.getsize(os.path.join(wdir, f)) > 10_000 for f in ("pnet.pt", "rnet.pt", "onet.pt"))
    (astro,) = load_photos(["astronaut"])
    faces = mtcnn_faces(mtcnn, astro.rgb)
    good = faces[faces[:, 4] >= 0.95]
    assert len(good) >= 1
    assert box_iou(good[:1, :4], [ASTRONAUT_FACE])[0, 0] > 0.8


def test_lfw_mosaic_faces_and_a_face_free_photo(mtcnn):
    lfw, cat = load_photos(["lfw_mosaic", "chelsea"], lfw_faces=4, lfw_tile=64)
    assert lfw.rgb.shape == (128, 128, 3)
    assert int((mtcnn_faces(mtcnn, lfw.rgb)[:, 4] >= 0.95).sum()) == 4
    assert int((mtcnn_faces(mtcnn, cat.rgb)[:, 4] >= 0.95).sum()) == 0


def test_only_photos_inside_the_wheel():
    assert {"astronaut.png", "camera.png", "lfw_subset.npy"} <= set(bundled_files())
    with pytest.raises(PhotoError, match="not a photo inside the installed scikit-image"):
        load_photos(["skin"])     # skimage.data.skin() is fetched with pooch, not shipped


def test_letterbox_maps_reference_boxes():
    (astro,) = load_photos(["astronaut"])
    astro.ref = np.array([[181, 62, 268, 172, 0.99], [0, 0, 16, 16, 0.99], [300, 300, 400, 400, 0.5]], np.float32)
    img, fit = letterbox(astro.rgb, 64, 128)                     # 512x512 -> 64x64 centred in 64x128
    assert img.shape == (64, 128, 3) and (fit.k, fit.px, fit.py) == (0.125, 32, 0)
    assert not img[:, :32].any() and not img[:, 96:].any()       # black padding
    ref = reference_boxes(astro, fit, min_prob=0.95, min_face_px=8)
    np.testing.assert_allclose(ref, [[181 / 8 + 32, 62 / 8, 268 / 8 + 32, 172 / 8]], rtol=1e-5)  # 2 px face, 0.5 prob: out

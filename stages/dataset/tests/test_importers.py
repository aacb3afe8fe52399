"""WIDER and logynthetic importers on tiny fixtures, including every bad-input case."""
import json
import re

import cv2
import numpy as np
import pytest

from stages.dataset import importers, steps
from stages.dataset.labels import BadSample

LM = "15 30 0.0 30 30 0.0 22 40 0.0 16 50 0.0 30 50 0.0"  # inside the box 10 20 30 40 (x y w h)


def _img(path, w=80, h=60, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


def wider_fixture(root, n=6, bad=()):
    """n good 80x60 images; ``bad`` adds one of: corrupt, missing, outside, landmarks."""
    lines = []
    for i in range(n):
        _img(root / "images" / "ev" / f"g{i}.jpg", seed=i)
        lines += [f"# ev/g{i}.jpg", f"10 20 30 40 {LM} 0.9"]
    if "corrupt" in bad:
        (root / "images" / "ev" / "corrupt.jpg").write_bytes(b"not a jpeg at all")
        lines += ["# ev/corrupt.jpg", f"10 20 30 40 {LM} 0.9"]
    if "truncated" in bad:  # header fine (passes the cheap check), pixels cut off: fails in the worker
        _img(root / "images" / "ev" / "cut.png")
        data = (root / "images" / "ev" / "cut.png").read_bytes()
        (root / "images" / "ev" / "cut.png").write_bytes(data[:len(data) // 2])
        lines += ["# ev/cut.png", f"10 20 30 40 {LM} 0.9"]
    if "missing" in bad:
        lines += ["# ev/missing.jpg", f"10 20 30 40 {LM} 0.9"]
    if "outside" in bad:
        _img(root / "images" / "ev" / "out.jpg")
        lines += ["# ev/out.jpg", f"10 20 30 40 {LM} 0.9", f"70 20 30 40 {LM} 0.9"]
    if "landmarks" in bad:
        _img(root / "images" / "ev" / "lm.jpg")
        lines += ["# ev/lm.jpg", "10 20 30 40 15 30 0.0 30 30 0.0 22 40 0.0 0.9"]
    (root / "label.txt").write_text("\n".join(lines) + "\n")
    return root


def _cfg(cfg, source, root, val=0, **kw):
    c = dict(cfg, source=source, root=str(root), **kw)
    c["splits"] = {"train": 3, "test": 2, "calibration": 1, "val": val}
    return c


def test_wider_import_letterboxes_labels(cfg, make_ctx, tmp_path):
    root = wider_fixture(tmp_path / "wider")
    ctx = make_ctx(_cfg(cfg, "wider", root))
    m = steps.run(ctx)["metrics"]
    assert (m["train_images"], m["test_images"], m["calibration_images"]) == (3, 2, 1)
    assert m["train_faces"] == 3 and m["bad_samples_skipped"] == 0
    idx = json.loads((ctx.out / "train" / "index.json").read_text())
    # 80x60 -> 64x48 (scale 0.8), padded 8 px top and bottom
    f = idx[0]["faces"][0]
    assert f["box"] == pytest.approx([8.0, 24.0, 32.0, 56.0])
    assert f["landmarks"][2] == pytest.approx([17.6, 40.0])
    img = cv2.imread(str(ctx.out / "train" / idx[0]["images"]["0"]))
    assert img.shape == (64, 64, 3) and img[:8].max() == 0
    assert {r["source"] for s in ("train", "test", "calibration")
            for r in json.loads((ctx.out / s / "index.json").read_text())} <= {f"ev/g{i}.jpg" for i in range(6)}


@pytest.mark.parametrize("kind, line, pattern", [
    ("corrupt", 11, r"cannot read image .*corrupt\.jpg"),
    ("truncated", 11, r"cannot decode image .*cut\.png"),
    ("missing", 11, r"label names ev/missing\.jpg but .* does not exist"),
    ("outside", 13, r"box \[70, 20, 100, 60\] lies outside 0\.\.80 x 0\.\.60 of ev/out\.jpg"),
    ("landmarks", 12, r"expected x y w h .* got 14: wrong landmark count"),
])
def test_wider_bad_input_names_file_and_line(cfg, make_ctx, tmp_path, kind, line, pattern):
    root = wider_fixture(tmp_path / "wider", n=5, bad=(kind,))  # 5 + 1 = all dealt, so "truncated" is decoded
    with pytest.raises(ValueError, match=re.escape(f"{root / 'label.txt'}:{line}: ") + pattern):
        steps.run(make_ctx(_cfg(cfg, "wider", root)))


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "link"])
def test_paths_leaving_the_dataset_root_are_refused(cfg, make_ctx, tmp_path, kind):
    root = wider_fixture(tmp_path / "wider", n=5)
    outside = tmp_path / "secret" / "face.jpg"
    _img(outside)                                        # a real image: only confinement may stop it
    name = {"dotdot": "../../secret/face.jpg", "absolute": str(outside), "link": "ev/link.jpg"}[kind]
    if kind == "link":
        (root / "images" / "ev" / "link.jpg").symlink_to(outside)
    with open(root / "label.txt", "a") as f:
        f.write(f"# {name}\n10 20 30 40 {LM} 0.9\n")
    with pytest.raises(BadSample, match=re.escape(f"{root / 'label.txt'}:11: image path {name!r} leaves the dataset root")):
        steps.run(make_ctx(_cfg(cfg, "wider", root)))


def test_logynthetic_link_out_of_the_root_is_refused(tmp_path):
    root = logy_fixture(tmp_path / "logy", n=2)
    (tmp_path / "elsewhere.png").write_bytes((root / "s0_0.png").read_bytes())
    (root / "s0_0.png").unlink()
    (root / "s0_0.png").symlink_to(tmp_path / "elsewhere.png")
    bad = [s for s in importers.find_samples("logynthetic", root) if s.error]
    assert len(bad) == 1 and "s0_0.json:1: image path 's0_0.png' leaves the dataset root" in bad[0].error


def test_wider_skip_mode_counts_bad_samples(cfg, make_ctx, tmp_path):
    root = wider_fixture(tmp_path / "wider", n=5, bad=("corrupt", "truncated", "missing", "outside", "landmarks"))
    m = steps.run(make_ctx(_cfg(cfg, "wider", root, on_bad_sample="skip")))["metrics"]
    assert m["bad_samples_skipped"] == 5 and len(m["bad_sample_reasons"]) == 5
    assert any("wrong landmark count" in r for r in m["bad_sample_reasons"])
    # the truncated image passed the header check, so it was dealt into a split and is missing there
    assert any("cannot decode" in r for r in m["bad_sample_reasons"])
    assert m["train_images"] + m["test_images"] + m["calibration_images"] == 5


def test_not_enough_images(cfg, make_ctx, tmp_path):
    root = wider_fixture(tmp_path / "wider", n=4)
    with pytest.raises(ValueError, match=r"4 usable but the splits need 3 train \+ 2 test \+ 1 calibration = 6"):
        steps.run(make_ctx(_cfg(cfg, "wider", root)))


def _sources(out, split):
    return [r["source"] for r in json.loads((out / split / "index.json").read_text())]


def test_val_is_dealt_last_so_other_splits_keep_their_images(cfg, make_ctx, tmp_path):
    root = wider_fixture(tmp_path / "wider", n=9)
    a = make_ctx(_cfg(cfg, "wider", root), name="noval")
    b = make_ctx(_cfg(cfg, "wider", root, val=3), name="val")
    steps.run(a)
    m = steps.run(b)["metrics"]
    assert (m["val_images"], m["val_faces"]) == (3, 3)
    for s in ("train", "test", "calibration"):
        assert _sources(a.out, s) == _sources(b.out, s)
        assert (a.out / s / "index.json").read_text() == (b.out / s / "index.json").read_text()
    val = _sources(b.out, "val")
    rest = [x for s in ("train", "test", "calibration") for x in _sources(b.out, s)]
    assert len(val) == 3 and not set(val) & set(rest) and len(set(val + rest)) == 9
    assert [r["id"] for r in json.loads((b.out / "val" / "index.json").read_text())] == [f"val_{i:05d}" for i in range(3)]
    assert (b.out / "val" / "labels.txt").is_file()


def test_not_enough_images_counts_val(cfg, make_ctx, tmp_path):
    root = wider_fixture(tmp_path / "wider", n=8)
    with pytest.raises(ValueError, match=r"8 usable but the splits need 3 train \+ 2 test \+ 1 calibration \+ 4 val = 10"):
        steps.run(make_ctx(_cfg(cfg, "wider", root, val=4)))


def _person(box, lms):
    return {"face_bbox_coordinates": {"2d_corners": box}, "landmarks_coordinates": {"2d": lms}}


def logy_fixture(root, n=6):
    five = [[20, 20], [40, 20], [30, 30], [22, 40], [38, 40]]
    for i in range(n):
        _img(root / f"s{i}_0.png", 64, 64, seed=i)
        (root / f"s{i}_0.json").write_text(json.dumps(
            {"person_0": _person([[10, 10], [50, 10], [50, 50], [10, 50]], five),
             "person_1": _person([[5, 52], [15, 62]], None)}, indent=2))
    (root / "s0_1.json").write_text("{}")  # a variant's labels: ignored
    return root


def test_logynthetic_import(cfg, make_ctx, tmp_path):
    root = logy_fixture(tmp_path / "logy")
    ctx = make_ctx(_cfg(cfg, "logynthetic", root))
    m = steps.run(ctx)["metrics"]
    assert m["train_images"] == 3 and m["train_faces"] == 6
    rec = json.loads((ctx.out / "test" / "index.json").read_text())[0]
    assert rec["faces"][0]["box"] == [10, 10, 50, 50] and rec["faces"][1]["landmarks"] is None
    assert rec["faces"][0]["landmarks"][4] == [38, 40]


def test_logynthetic_bad_json(cfg, make_ctx, tmp_path):
    root = logy_fixture(tmp_path / "logy", n=8)
    bad = {"person_0": _person([[1, 1], [9, 9]], [[2, 2]] * 5),
           "person_1": _person([[1, 1], [9, 9]], [[2, 2]] * 4)}
    (root / "s3_0.json").write_text(json.dumps(bad, indent=2))
    (root / "s5_0.png").unlink()
    line = json.dumps(bad, indent=2).splitlines().index('  "person_1": {') + 1
    with pytest.raises(ValueError, match=rf"s3_0\.json:{line}: person_1: .*got 4: wrong landmark count"):
        steps.run(make_ctx(_cfg(cfg, "logynthetic", root)))
    m = steps.run(make_ctx(_cfg(cfg, "logynthetic", root, on_bad_sample="skip"), name="skip"))["metrics"]
    assert m["bad_samples_skipped"] == 2 and any("no image s5_0" in r for r in m["bad_sample_reasons"])
    assert m["train_images"] + m["test_images"] + m["calibration_images"] == 6


def test_decode_failure_and_tolerance(tmp_path):
    p = tmp_path / "x.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(BadSample, match=r"label.txt:7: cannot decode image"):
        importers.load_image(p, (8, 8), "label.txt:7")
    img = np.zeros((60, 80, 3), np.uint8)
    out, faces, dropped = importers.letterbox(img, [{"box": [0, 0, 80, 60], "landmarks": None},
                                                    {"box": [0, 0, 4, 4], "landmarks": None}], 64, 64, 6.0)
    assert dropped == 1 and faces[0]["box"] == [0, 8, 64, 56]

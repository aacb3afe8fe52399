"""End to end through shared.stage.main: files, manifest, labels, workers, failures."""
import json

import cv2

from shared.errors import LogOnlyFilter
from shared.stage import main
from shared.labelv2 import read_labelv2
from stages.dataset.steps import run

CONFIG = """\
run: {run}
seed: 7
dataset:
  size: [64, 80]
  splits: {{train: 5, test: 3, calibration: 2, val: {val}}}
  faces_per_image: {{min: 1, max: 2}}
  face_size: {{min: 12, max: 36}}
  preview: 2
  workers: {workers}
"""


def _run(tmp_path, run_name, workers=2, extra="", val=2):
    cfg = tmp_path / f"{run_name}.yaml"
    cfg.write_text(CONFIG.format(run=run_name, workers=workers, val=val) + extra)
    rc = main("dataset", run, ["--config", str(cfg), "--work", str(tmp_path / "work")])
    return rc, tmp_path / "work" / run_name / "dataset"


def test_end_to_end(tmp_path):
    rc, out = _run(tmp_path, "t")
    assert rc == 0
    manifest = json.loads((out / "manifest.json").read_text())
    m = manifest["metrics"]
    assert (m["train_images"], m["test_images"], m["calibration_images"], m["val_images"]) == (5, 3, 2, 2)
    assert m["faces_total"] >= 10 and m["bad_samples_skipped"] == 0 and m["images_per_s"] > 0
    assert manifest["config"]["dataset"]["size"] == [64, 80] and manifest["seed"] == 7
    preview = cv2.imread(str(out / "preview.png"))
    assert preview is not None and preview.shape[0] > 2 * 150 and preview.shape[1] == 5 * 192
    for split, n in (("train", 5), ("test", 3), ("calibration", 2), ("val", 2)):
        index = json.loads((out / split / "index.json").read_text())
        labels = read_labelv2(out / split / "labels.txt")
        assert len(index) == len(labels) == n
        for rec, lab in zip(index, labels):
            assert lab["image"] == rec["images"]["0"] and (lab["width"], lab["height"]) == (80, 64)
            assert lab["faces"] == rec["faces"]  # labels are rounded to 0.01 px, so the text round trip is exact
            for v in ("0", "1", "2", "0_noisy", "1_noisy"):
                assert rec["images"][v] == f"images/{rec['id']}_{v}.png"
                assert (out / split / rec["images"][v]).is_file()
            assert f"{split}/{rec['images']['0']}" in manifest["files"]
    ids = [r["id"] for s in ("train", "test", "calibration", "val") for r in json.loads((out / s / "index.json").read_text())]
    assert len(set(ids)) == 12


def test_val_split_leaves_the_other_splits_unchanged(tmp_path):
    """Synthetic images are seeded per (split, index): adding val changes no other split's bytes."""
    _, a = _run(tmp_path, "noval", workers=0, val=0)
    _, b = _run(tmp_path, "val", workers=0, val=3)
    assert json.loads((a / "manifest.json").read_text())["metrics"]["val_images"] == 0
    assert json.loads((a / "val" / "index.json").read_text()) == []
    for split in ("train", "test", "calibration"):
        assert (a / split / "index.json").read_text() == (b / split / "index.json").read_text()
        assert (a / split / "labels.txt").read_text() == (b / split / "labels.txt").read_text()
        for p in sorted((a / split / "images").iterdir()):
            assert p.read_bytes() == (b / split / "images" / p.name).read_bytes()
    assert (cv2.imread(str(a / "preview.png")) == cv2.imread(str(b / "preview.png"))).all()
    val = json.loads((b / "val" / "index.json").read_text())
    assert [r["id"] for r in val] == ["val_00000", "val_00001", "val_00002"]
    v0 = cv2.imread(str(b / "val" / val[0]["images"]["0"]))
    t0 = cv2.imread(str(b / "test" / "images" / "test_00000_0.png"))
    assert v0.shape == t0.shape and not (v0 == t0).all()  # own seed, not a copy of test


def test_val_default_is_not_zero(base_cfg):
    assert base_cfg["splits"]["val"] == base_cfg["splits"]["test"] > 0


def test_output_independent_of_worker_count(tmp_path):
    _, a = _run(tmp_path, "two", workers=2)
    _, b = _run(tmp_path, "one", workers=0)
    for split in ("train", "calibration", "val"):
        assert (a / split / "index.json").read_text() == (b / split / "index.json").read_text()
        assert (a / split / "labels.txt").read_text() == (b / split / "labels.txt").read_text()
    pa, pb = a / "train" / "images" / "train_00004_1_noisy.png", b / "train" / "images" / "train_00004_1_noisy.png"
    assert (cv2.imread(str(pa)) == cv2.imread(str(pb))).all()


def test_failure_leaves_no_output(tmp_path, capsys):
    (tmp_path / "wider").mkdir()
    (tmp_path / "wider" / "label.txt").write_text("# nothere.jpg\n1 1 5 5\n")
    extra = f"  source: wider\n  root: {tmp_path / 'wider'}\n"
    rc, out = _run(tmp_path, "bad", extra=extra)
    assert rc == 3 and not out.exists()          # EXIT_INPUT: bad input, not a crash
    err = capsys.readouterr().err
    assert err.rstrip().splitlines()[-1].startswith("error: ") and "label.txt:1: label names nothere.jpg but" in err
    console = LogOnlyFilter()
    shown = [ln for ln in err.splitlines() if console.show(ln)]   # what the driver lets onto the console
    assert not any("Traceback" in ln for ln in shown) and "Traceback" in err   # the log keeps it
    assert not list((tmp_path / "work" / "bad" / ".tmp").glob("dataset-*"))


def test_config_errors(tmp_path, capsys):
    rc, out = _run(tmp_path, "cfg", extra="  face_size: {min: 40, max: 20}\n")
    assert rc == 2 and "dataset.face_size: min 40 > max 20" in capsys.readouterr().err
    rc, _ = _run(tmp_path, "cfg2", extra="  source: wider\n")
    assert rc == 2 and "dataset.root: source 'wider' needs root" in capsys.readouterr().err

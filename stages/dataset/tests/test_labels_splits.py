"""Label formats round trip; splits are disjoint, sized and deterministic."""
import pytest

from shared.labelv2 import BadSample, read_labelv2, write_labelv2
from stages.dataset.labels import read_wider
from stages.dataset.splits import assign

RECORDS = [
    {"images": {"0": "images/a_0.png"}, "width": 64, "height": 48, "faces": [
        {"box": [1.5, 2.25, 30.0, 40.75], "landmarks": [[5.0, 10.0], [20.5, 10.0], [12.0, 20.0], [8.0, 30.0], [18.0, 30.0]]},
        {"box": [40.0, 0.0, 60.0, 20.0], "landmarks": None}]},
    {"images": {"0": "images/b_0.png"}, "width": 64, "height": 48, "faces": []},
]


def test_labelv2_round_trip(tmp_path):
    p = tmp_path / "labels.txt"
    write_labelv2(p, RECORDS)
    text = p.read_text().splitlines()
    assert text[0] == "# images/a_0.png 64 48"
    assert text[2].split()[4:] == ["-1"] * 15
    back = read_labelv2(p)
    assert [b["image"] for b in back] == ["images/a_0.png", "images/b_0.png"]
    assert [b["faces"] for b in back] == [r["faces"] for r in RECORDS]
    assert back[0]["width"] == 64 and back[0]["height"] == 48


def test_labelv2_rejects_short_line(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_text("# images/a_0.png 8 8\n1 2 3 4 5\n")
    with pytest.raises(BadSample, match=r"labels.txt:2: expected 19 values"):
        read_labelv2(p)


def test_read_wider(tmp_path):
    p = tmp_path / "label.txt"
    p.write_text("# 0--Parade/a.jpg\n"
                 "10 20 30 40 15 30 0.0 30 30 0.0 22 40 0.0 16 50 0.0 30 50 0.0 0.9\n"
                 "5 5 4 4 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 0.2\n"
                 "# b.jpg\n")
    a, b = read_wider(p, tmp_path / "images")
    assert a.image == tmp_path / "images" / "0--Parade" / "a.jpg" and a.where == f"{p}:1"
    assert a.faces[0]["box"] == [10, 20, 40, 60] and a.faces[0]["landmarks"][2] == [22, 40]
    assert a.faces[1]["landmarks"] is None and a.faces[1]["where"] == f"{p}:3"
    assert b.faces == [] and a.error is None


def test_splits_disjoint_sized_deterministic():
    want = {"train": 10, "test": 4, "calibration": 3}
    a = assign(20, want, seed=1)
    assert {k: len(v) for k, v in a.items()} == want
    allidx = a["train"] + a["test"] + a["calibration"]
    assert len(set(allidx)) == 17 and all(0 <= i < 20 for i in allidx)
    assert assign(20, want, seed=1) == a and assign(20, want, seed=2) != a


def test_val_split_dealt_last_keeps_the_others():
    old = assign(30, {"train": 10, "test": 4, "calibration": 3}, seed=5)
    new = assign(30, {"train": 10, "test": 4, "calibration": 3, "val": 6}, seed=5)
    assert {s: new[s] for s in old} == old
    assert len(new["val"]) == 6 and not set(new["val"]) & {i for s in old for i in old[s]}


def test_unknown_split_refused():
    with pytest.raises(ValueError, match=r"unknown split\(s\) valid; known: train, test, calibration, val"):
        assign(30, {"train": 1, "valid": 2}, seed=0)


def test_splits_too_few_names_numbers():
    with pytest.raises(ValueError, match=r"12 usable .*10 train \+ 4 test \+ 3 calibration = 17"):
        assign(12, {"train": 10, "test": 4, "calibration": 3}, seed=0)

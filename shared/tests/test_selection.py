"""The split discipline: selections refuse the test split, pick the best val row, ties stable."""
import math
import subprocess
import sys
from pathlib import Path

import pytest

from shared.selection import SelectionError, check_selection_split, pick_best, tag_split

ROOT = Path(__file__).resolve().parents[2]


def rows(split, scores):
    return [{"name": f"cell{i}", "ap": s, "split": split} for i, s in enumerate(scores)]


def test_refuses_test_split():
    with pytest.raises(SelectionError, match=r"selection on the 'test' split refused: the test split is only ever "
                                             r"reported; select on 'val'"):
        check_selection_split("test")
    with pytest.raises(SelectionError, match="'test' split refused"):
        pick_best(rows("test", [0.5, 0.7]), "ap", split="test")
    assert issubclass(SelectionError, ValueError)


def test_allowed_and_unknown_splits():
    assert check_selection_split("val") == "val"
    assert check_selection_split("calibration") == "calibration"
    with pytest.raises(SelectionError, match=r"unknown split 'valid'"):
        check_selection_split("valid")


def test_picks_max_on_val_and_min_when_lower_is_better():
    r = rows("val", [0.61, 0.74, 0.70])
    assert pick_best(r, "ap", split="val") is r[1]
    assert pick_best(r, "ap", split="val", higher=False) is r[0]
    assert pick_best(r, lambda row: -row["ap"], split="val") is r[0]


def test_ties_go_to_the_first_row():
    r = rows("val", [0.5, 0.8, 0.8, 0.2, 0.2])
    assert pick_best(r, "ap", split="val")["name"] == "cell1"
    assert pick_best(r, "ap", split="val", higher=False)["name"] == "cell3"
    assert pick_best(iter(r), "ap", split="val")["name"] == "cell1"  # any iterable


def test_rows_must_be_from_the_selection_split():
    r = rows("val", [0.5, 0.6]) + rows("test", [0.9])
    with pytest.raises(SelectionError, match=r"row 2 is from the 'test' split \(rows need split: 'val'\)"):
        pick_best(r, "ap", split="val")
    with pytest.raises(SelectionError, match=r"row 0 does not say which split its score is from"):
        pick_best([{"ap": 0.5}], "ap", split="val")
    assert pick_best([tag_split({"ap": 0.5}, "val")], "ap", split="val") == {"ap": 0.5, "split": "val"}


def test_missing_scores_are_passed_over():
    r = rows("val", [None, math.nan, 0.3, 0.1])
    assert pick_best(r, "ap", split="val")["name"] == "cell2"
    with pytest.raises(SelectionError, match=r"no row has a ap score \(2 rows, all missing or NaN\)"):
        pick_best(rows("val", [None, math.nan]), "ap", split="val")
    with pytest.raises(SelectionError, match="no rows to choose from"):
        pick_best([], "ap", split="val")


def test_imports_without_heavy_packages():
    code = "import sys; sys.modules['torch'] = sys.modules['cv2'] = None; import shared.selection"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr

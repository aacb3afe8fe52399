"""The split discipline: choices are made on ``val``, the ``test`` split is only reported.

Every selection or search in every stage (the PTQ cell QAT starts from, joint-loss
weights, a pruning budget, a mixed-precision choice) goes through
:func:`pick_best` or at least :func:`check_selection_split`, which refuse the test
split with :class:`SelectionError`.  Rows are dicts of scores that say which split
they were measured on (``row["split"]``), so a manifest that stores the rows also
says where each number comes from.

    best = pick_best(cells, key="ap", split="val")          # every cell has split: "val"

No heavy imports: usable from any image and from the host.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from shared.errors import ExpectedError

SPLIT_KEY = "split"                                  # the row field naming the split its scores are from
SELECTION_SPLITS = ("val", "calibration", "train")   # may be selected on; "val" is the one meant for it
REPORT_ONLY = ("test",)


class SelectionError(ExpectedError, ValueError):
    """A selection that would look at the wrong split (or has nothing to choose from)."""


def check_selection_split(split: str) -> str:
    """Return ``split`` if choices may be made on it; SelectionError for test (and unknown names)."""
    if split in REPORT_ONLY:
        raise SelectionError(f"selection on the '{split}' split refused: the test split is only ever reported; "
                             "select on 'val' (dataset.splits.val) and report the chosen one on test")
    if split not in SELECTION_SPLITS:
        raise SelectionError(f"selection on unknown split {split!r}; choose on one of {', '.join(SELECTION_SPLITS)} "
                             "('val' is the one meant for it)")
    return split


def _score(row: dict, key: str | Callable[[dict], Any]) -> float | None:
    v = key(row) if callable(key) else row.get(key)
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


def pick_best(rows: Iterable[dict], key: str | Callable[[dict], Any], split: str, higher: bool = True) -> dict:
    """The row with the best ``key`` score among rows measured on ``split``.

    * ``split`` must pass :func:`check_selection_split` (``"test"`` raises SelectionError);
    * every row must carry ``row["split"] == split``: a row without it, or from another
      split, raises SelectionError (a test-split score cannot slip in among val rows);
    * ``key`` is a field name or a function of the row; rows whose score is None or NaN
      (a failed cell) are passed over; if none is left, SelectionError;
    * ``higher=False`` picks the lowest score; ties go to the first such row (stable).

    Returns the row itself (not a copy)."""
    check_selection_split(split)
    rows = list(rows)
    name = key if isinstance(key, str) else getattr(key, "__name__", "key")
    if not rows:
        raise SelectionError(f"pick_best({name!r}, split={split!r}): no rows to choose from")
    best, best_v = None, None
    for i, row in enumerate(rows):
        got = row.get(SPLIT_KEY)
        if got != split:
            what = "does not say which split its score is from" if got is None else f"is from the '{got}' split"
            raise SelectionError(f"pick_best({name!r}, split={split!r}): row {i} {what} "
                                 f"(rows need {SPLIT_KEY}: {split!r})")
        v = _score(row, key)
        if v is None:
            continue
        if best_v is None or (v > best_v if higher else v < best_v):
            best, best_v = row, v
    if best is None:
        raise SelectionError(f"pick_best({name!r}, split={split!r}): no row has a {name} score "
                             f"({len(rows)} rows, all missing or NaN)")
    return best


def tag_split(row: dict, split: str) -> dict:
    """``row`` with ``split`` recorded (a new dict); for building rows that pick_best accepts."""
    return {**row, SPLIT_KEY: split}

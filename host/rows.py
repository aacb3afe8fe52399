"""The result rows of two quantize metrics.json files compared field by field (e.g. local vs Ray executor).

    python3 -m host.rows A/metrics.json B/metrics.json [--tol 0]

Rows are matched on (candidate, model, method, bits, seed); timing fields (``seconds``,
``ptq_seconds``, ``history``) are ignored.  Prints each differing field; exit 1 on any.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

IGNORED = {"seconds", "ptq_seconds", "history"}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if k in IGNORED:
            continue
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _key(r: dict) -> tuple:
    return r["candidate"], r["model"], r["method"], r["bits"], r["seed"]


def differences(a: list[dict], b: list[dict], tol: float = 0.0) -> list[str]:
    """One line per row only in one list and per field whose values differ (floats by more than ``tol``)."""
    da, db = {_key(r): _flat(r) for r in a}, {_key(r): _flat(r) for r in b}
    out = []
    for k in sorted(set(da) | set(db), key=str):
        if k not in da or k not in db:
            out.append(f"only in {'b' if k not in da else 'a'}: {k}")
            continue
        for f in sorted(set(da[k]) | set(db[k])):
            x, y = da[k].get(f), db[k].get(f)
            floats = isinstance(x, float) and isinstance(y, float)
            if not (abs(x - y) <= tol if floats else x == y):
                out.append(f"{k} {f}: {x!r} vs {y!r}")
    return out


def rows_of(path: Path) -> list[dict]:
    return json.loads(Path(path).read_text())["rows"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--tol", type=float, default=0.0)
    args = ap.parse_args(argv)
    a, b = rows_of(args.a), rows_of(args.b)
    diffs = differences(a, b, args.tol)
    print("\n".join(diffs + [f"{len(a)} rows vs {len(b)} rows: {len(diffs)} difference(s)"]))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())

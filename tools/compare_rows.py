"""Compare the result rows of two quantize metrics.json files (e.g. local vs Ray executor).

    python3 tools/compare_rows.py A/metrics.json B/metrics.json [--tol 1e-6]

Timing keys (seconds, ptq_seconds, history) are ignored; prints each differing field and exits 1 on any."""
import argparse
import json
import sys

IGNORED = {"seconds", "ptq_seconds", "history"}


def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if k in IGNORED:
            continue
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("a"), ap.add_argument("b"), ap.add_argument("--tol", type=float, default=1e-6)
    args = ap.parse_args()
    ra, rb = (json.load(open(p))["rows"] for p in (args.a, args.b))
    key = lambda r: (r["candidate"], r["model"], r["method"], r["bits"], r["seed"])   # noqa: E731
    da, db = {key(r): flat(r) for r in ra}, {key(r): flat(r) for r in rb}
    bad = 0
    for k in sorted(set(da) | set(db), key=str):
        if k not in da or k not in db:
            print(f"only in {'b' if k not in da else 'a'}: {k}")
            bad += 1
            continue
        for f in sorted(set(da[k]) | set(db[k])):
            x, y = da[k].get(f), db[k].get(f)
            same = (abs(x - y) <= args.tol) if isinstance(x, float) and isinstance(y, float) else x == y
            if not same:
                print(f"{k} {f}: {x!r} vs {y!r}")
                bad += 1
    print(f"{len(da)} rows vs {len(db)} rows: {bad} difference(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

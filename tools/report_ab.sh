#!/bin/sh
# A/B of the report stage's code: run the report of an older commit on this checkout's finished run
# (its upstream stage folders linked into a scratch work dir, read-only), then compare its
# results.csv with the run's own report: same rows? which cells differ?
#   tools/report_ab.sh <commit> [run]        e.g. tools/report_ab.sh b0cc815 demo
# Writes only under volumes/.bench/report-ab/ (and a git worktree in volumes/.bench/report-ab-src).
set -eu
cd "$(dirname "$0")/.."
COMMIT=${1:?usage: tools/report_ab.sh <commit> [run]}
RUN=${2:-demo}
REPO=$(pwd)
AB=$REPO/volumes/.bench/report-ab
SRC=$REPO/volumes/.bench/report-ab-src
rm -rf "$AB"; mkdir -p "$AB/$RUN"
git worktree remove --force "$SRC" 2>/dev/null || rm -rf "$SRC"
git worktree add -f -q "$SRC" "$COMMIT"
for d in "$REPO/volumes/$RUN"/*/; do n=$(basename "$d"); [ "$n" = report ] || ln -s "$d" "$AB/$RUN/$n"; done
docker run --rm -v "$SRC:/src" -v "$REPO/volumes/$RUN:$REPO/volumes/$RUN:ro" -v "$AB:/work" -w /src \
  -e PYTHONPATH=/src jmmc/report:local python -m stages.report --config "/src/configs/$RUN.yaml" --work /work
python3 - "$AB/$RUN/report/results.csv" "$REPO/volumes/$RUN/report/results.csv" <<'PY'
import csv, sys
old, new = ({r["artifact"]: r for r in csv.DictReader(open(p))} for p in sys.argv[1:3])
print(f"rows: old {len(old)}, new {len(new)}; only old {sorted(set(old) - set(new))}; only new {sorted(set(new) - set(old))}")
for a in sorted(set(old) & set(new)):
    for c in ("role", "precision", "ap", "nme", "psnr", "ssim", "params", "macs", "weight_bytes", "missed"):
        o, n = old[a].get(c, ""), new[a].get(c, "")
        try:
            same = o == n or abs(float(o) - float(n)) < 1e-6
        except ValueError:
            same = False
        if not same:
            print(f"  {a}: {c} {o} -> {n}")
PY
git worktree remove --force "$SRC"

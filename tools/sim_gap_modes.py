"""Every INT8 detection file of a finished run's quantize stage (or the N largest sim-vs-file gaps),
evaluated fused (``exact``, the kernels latency is timed with) and unfused (``reference``, Q/DQ kept):
is the gap to the AIMET simulation the fused kernels' or the file's? (issue 15; docs/decisions.md)

In the quantize image over a finished demo run:

    docker run --rm -v $PWD/volumes:/work -v $PWD/tools:/tools -v $PWD/configs:/app/configs -e PYTHONPATH=/app \\
        -w /app jmmc/quantize:local python /tools/sim_gap_modes.py [N] [--run /work/demo]

or on the host with onnxruntime installed: ``PYTHONPATH=. python tools/sim_gap_modes.py --run volumes/demo``.
"""
import argparse
import json
import time
from pathlib import Path

from shared.config import REPO, load_config
from shared.data import load_split
from shared.evaluation import Protocol, ort_session
from stages.quantize import measure

ap = argparse.ArgumentParser()
ap.add_argument("n", nargs="?", type=int, default=0, help="only the N largest gaps (0: every file)")
ap.add_argument("--run", type=Path, default=Path("/work/demo"))
a = ap.parse_args()
proto = Protocol.from_config(load_config(REPO / "configs" / f"{a.run.name}.yaml"))
test = load_split(a.run / "dataset", "test")
q = a.run / "quantize"
rows = [r for r in json.loads((q / "metrics.json").read_text())["rows"]
        if r["method"] != "fp32" and "ap" in r.get("sim", {}) and isinstance(r.get("onnx_file"), str)
        and (q / r["onnx_file"]).is_file()]
rows.sort(key=lambda r: -abs(r["sim"]["ap"] - r["onnx"]["ap"]))
summary = {"exact": [], "reference": []}
for r in rows[:a.n or None]:
    out = {}
    for mode in ("exact", "reference"):
        t0 = time.time()
        out[mode] = measure.evaluate(ort_session(q / r["onnx_file"], mode), r["model"], test, proto)["ap"]
        out[mode + "_s"] = round(time.time() - t0, 1)
        summary[mode].append(out[mode] - r["sim"]["ap"])
    print(f"{r['onnx_file']} ({r['model']}, {r['method']}): sim AP {r['sim']['ap']:.4f}, fused {out['exact']:.4f}, "
          f"unfused {out['reference']:.4f}; file - sim: fused {100 * (out['exact'] - r['sim']['ap']):+.1f}, "
          f"unfused {100 * (out['reference'] - r['sim']['ap']):+.1f} points", flush=True)
for mode, g in summary.items():
    if g:
        print(f"{mode}: {len(g)} files, largest |file - sim| {100 * max(map(abs, g)):.1f} points, "
              f"{sum(abs(x) > 0.005 for x in g)} over 0.5 point, mean |gap| {100 * sum(map(abs, g)) / len(g):.2f}")

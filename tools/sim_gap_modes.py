"""The demo's five largest sim-vs-ONNX gaps, each file evaluated fused (``exact``) and unfused (``reference``).

Run in the quantize image over a finished demo run (issue 15: is the gap the kernels' or the file's?):

    docker run --rm -v $PWD/volumes:/work -v $PWD/tools:/tools -v $PWD/configs:/app/configs -e JMMC_WORK=/work -e PYTHONPATH=/app -w /app \\
        jmmc/quantize:local python /tools/sim_gap_modes.py
"""
import json, time
from pathlib import Path
from shared.config import load_config
from shared.data import load_split
from shared.evaluation import Protocol, ort_session
from stages.quantize import measure
cfg = load_config("configs/demo.yaml")
proto = Protocol.from_config(cfg)
test = load_split(Path("/work/demo/dataset"), "test")
q = Path("/work/demo/quantize")
rows = [r for r in json.loads((q / "metrics.json").read_text())["rows"] if r["method"] != "fp32" and isinstance(r.get("onnx_file"), str) and (q / r["onnx_file"]).is_file()]
def gap(r): k = "ap" if "ap" in r["sim"] else "psnr"; return abs(r["sim"][k] - r["onnx"][k]), k
rows.sort(key=lambda r: -gap(r)[0])
for r in rows[:5]:
    g, k = gap(r)
    out = {}
    for mode in ("exact", "reference"):
        t0 = time.time()
        out[mode] = measure.evaluate(ort_session(q / r["onnx_file"], mode), r["model"], test, proto)[k]
        out[mode + "_s"] = round(time.time() - t0, 1)
    print(f"{r['onnx_file']} ({r['model']}, {r['method']}): sim {k} {r['sim'][k]:.4f}, file fused {out['exact']:.4f} "
          f"({out['exact_s']} s), unfused {out['reference']:.4f} ({out['reference_s']} s); "
          f"gap fused {abs(r['sim'][k]-out['exact']):.4f}, unfused {abs(r['sim'][k]-out['reference']):.4f}", flush=True)

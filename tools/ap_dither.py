"""How finely does AP on the test split resolve a file? ``stages.quantize.measure.ap_resolution`` on any
ONNX file: AP with the input moved by one grey level on a small fraction of its values (invisible; the
FP32 nets do not notice), several draws. The spread is what any two implementations of the same int8
graph that are not bit-identical can differ by (issue 15's sim-vs-file gap; docs/decisions.md,
session 12). The quantize stage measures it for every INT8 file more than 0.5 point from its sim.

    PYTHONPATH=. python tools/ap_dither.py volumes/demo/quantize/train-fp32/pipeline/fp32.onnx pipeline
    PYTHONPATH=. python tools/ap_dither.py volumes/demo/quantize/train-fp32/detector/none_W8A8_min_max_s0.onnx detector

(host with onnxruntime and torch, or the quantize image over a finished demo run).
"""
import argparse
from pathlib import Path

from shared.config import REPO, load_config
from shared.data import load_split
from shared.evaluation import Protocol, ort_session
from stages.quantize.measure import ap_resolution, evaluate

ap = argparse.ArgumentParser()
ap.add_argument("file", type=Path)
ap.add_argument("unit", choices=["pipeline", "detector"])
ap.add_argument("--run", type=Path, default=Path("volumes/demo"))
ap.add_argument("--fraction", type=float, default=0.004, help="share of input values moved by one grey level")
ap.add_argument("--draws", type=int, default=5)
a = ap.parse_args()
proto = Protocol.from_config(load_config(REPO / "configs" / f"{a.run.name}.yaml"))
test = load_split(a.run / "dataset", "test")
sess = ort_session(a.file)
res = ap_resolution(sess, a.unit, test, proto, a.draws, a.fraction)
print(f"{a.file}: AP {evaluate(sess, a.unit, test, proto)['ap']:.4f}; {a.draws} draws with {100 * a.fraction:.1f} % "
      f"of the input moved by one grey level: mean {res['mean']:.4f}, sd {100 * res['sd']:.2f} points, "
      f"spread {100 * res['spread']:.2f} points")

"""How finely does AP on the test split resolve a file? AP with the input moved by one grey level on a
small fraction of pixels (invisible; the FP32 nets do not notice), several draws: the spread is what
any two implementations of the same int8 graph that are not bit-identical can differ by
(issue 15's sim-vs-file gap; docs/decisions.md, session 12).

    PYTHONPATH=. python tools/ap_dither.py volumes/demo/quantize/train-fp32/pipeline/fp32.onnx pipeline
    PYTHONPATH=. python tools/ap_dither.py volumes/demo/quantize/train-fp32/detector/none_W8A8_min_max_s0.onnx detector

(host with onnxruntime, or the quantize image over a finished demo run). Prints AP undithered, then
the mean, standard deviation and range over ``--draws`` dithered passes.
"""
import argparse
from pathlib import Path

import numpy as np

from shared import units
from shared.config import REPO, load_config
from shared.data import load_split, to_float
from shared.evaluation import Protocol, decode, evaluate_detections, ort_session

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
name = sess.get_inputs()[0].name
rng = np.random.default_rng(0)
scale = units.input_range(a.unit)
aps = []
for frac in [0.0] + [a.fraction] * a.draws:
    dets = []
    for i in range(len(test)):
        img = to_float(test.image(i, proto.variant)[None]) * np.float32(scale)
        if frac:
            img = img + (rng.random(img.shape) < frac) * rng.choice([-1, 1], img.shape) * np.float32(scale / 255)
        dets += decode(sess.run(None, {name: img.astype(np.float32)}), (img.shape[3], img.shape[2]),
                       proto.score_thr, proto.nms_iou)
    aps.append(evaluate_detections(dets, test.gts(len(dets)), proto.iou_thr)["ap"])
d = np.array(aps[1:])
print(f"{a.file}: AP {aps[0]:.4f}; {a.draws} draws with {100 * a.fraction:.1f} % of the input moved by one grey "
      f"level: mean {d.mean():.4f}, sd {100 * d.std(ddof=1):.2f} points, range {d.min():.4f}..{d.max():.4f}")

"""Where the pruned chain loses its accuracy: joint pruning with the detector left whole.

The prune stage's joint variant, rebuilt with the same recipe (stages.prune.variants.joint: the
config's importance, steps, fine-tuning, distillation, round_to), except that every YuNet layer is
in torch-pruning's ignored layers, so the MACs come out of the two restoration nets only.  Scored on
the *validation* split next to the stage's joint variant; writes
``volumes/<run>/.bench/prune_protect_detector.json``.  Not a stage (it invalidates nothing).

    docker run --rm -v "$PWD":/src -w /src -e PYTHONPATH=/src jmmc/prune:local \\
        python tools/prune_protect_detector.py --config configs/demo.yaml --ratio 0.6
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from shared.config import load_config
from shared.data import load_split
from shared.evaluation import Protocol, evaluate_detection
from shared.metrics.cost import count_macs
from shared.models.bundle import load_bundle
from stages.prune import structured, variants


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--work", type=Path, default=Path("volumes"))
    p.add_argument("--ratio", type=float, default=0.6)
    p.add_argument("--compare", default="joint_l2_r55", help="the stage's variant to score beside it")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [protect] %(message)s", datefmt="%H:%M:%S")
    log = logging.getLogger("protect")
    cfg = load_config(a.config)
    run, pc = a.work / cfg["run"], cfg["prune"]
    proto = Protocol.from_config(cfg)
    data = run / "dataset"
    train, calib, val = (load_split(data, s) for s in ("train", "calibration", "val"))
    fp32, _ = load_bundle(run / "train")
    size = tuple(cfg["dataset"]["size"])
    env = variants.Env(train, calib, size, pc, cfg["seed"], log, __import__("torch").device("cpu"))
    plain = structured.ignored_layers

    def with_detector(model, kind, keep=True, head=True):
        out = plain(model, kind, keep, head)
        return out + [model.detector] if kind == "pipeline" else out
    variants.ignored_layers = with_detector
    t0 = time.time()
    pipe, info = variants.joint(fp32, a.ratio, pc["importance"], pc["joint"]["weights"][0], env,
                                f"protect_detector_r{int(a.ratio * 100)}")
    seconds = time.time() - t0
    x = env.example()
    rows = {}
    for name, m in (("fp32", fp32), (a.compare, load_bundle(run / "prune" / "variants" / a.compare)[0]),
                    (f"joint_detector_whole_r{int(a.ratio * 100)}", pipe)):
        m = m.eval()
        macs = {part: count_macs(getattr(m, part), x=x * (255.0 if part == "detector" else 1.0))
                for part in ("enhancer", "denoiser", "detector")}
        rows[name] = {"val_ap": evaluate_detection(m, val, proto)["ap"], "macs": macs, "macs_total": sum(macs.values())}
    base = rows["fp32"]["macs_total"]
    print(f"{'system':<32} {'val AP':>7} {'MACs':>8}  enhancer / denoiser / detector (M)")
    for name, r in rows.items():
        r["macs_removed"] = 1 - r["macs_total"] / base
        print(f"{name:<32} {r['val_ap']:7.3f} {-100 * r['macs_removed']:+7.1f} %  "
              + " / ".join(f"{v / 1e6:.0f}" for v in r["macs"].values()))
    out = run / ".bench" / "prune_protect_detector.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"split": "val", "ratio": a.ratio, "seconds": round(seconds, 1), "rows": rows},
                              indent=2) + "\n")
    print(f"written {out} ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

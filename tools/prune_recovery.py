"""Recovery curve of a pruned chain: validation AP after each extra fine-tuning epoch.

What limits the JMMC chain's accuracy after pruning, measured: the prune stage's variant (a model
bundle) is fine-tuned further with the stage's own joint loss and distillation (prune.joint.weights[0],
prune.distill), one epoch at a time on ``--limit`` training images, and scored on the *validation*
split after each epoch (the test split is not looked at).  Each epoch is one call of the stage's
fine-tuning (AdamW, cosine schedule within the epoch: warm restarts).  Not a stage: it reads a
finished run and writes ``volumes/<run>/.bench/prune_recovery_<variant>.json``.

    docker run --rm -v "$PWD":/src -w /src -e PYTHONPATH=/src jmmc/prune:local \\
        python tools/prune_recovery.py --config configs/demo.yaml --variant joint_l2_r55 --epochs 6
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from shared.config import load_config
from shared.data import load_split
from shared.evaluation import Protocol, evaluate_detection
from shared.jmmc import frozen_copy
from shared.models.bundle import load_bundle
from stages.prune.finetuners import JointTerms, run_finetune


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--work", type=Path, default=Path("volumes"))
    p.add_argument("--variant", default="joint_l2_r55", help="prune/variants/<variant>")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--limit", type=int, default=None, help="training images per epoch (default: all)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [recovery] %(message)s", datefmt="%H:%M:%S")
    log = logging.getLogger("recovery")
    cfg = load_config(a.config)
    run = a.work / cfg["run"]
    proto = Protocol.from_config(cfg)
    train, val = load_split(run / "dataset", "train"), load_split(run / "dataset", "val")
    pipe, _ = load_bundle(run / "prune" / "variants" / a.variant)
    teacher, _ = load_bundle(run / "train")
    pc = cfg["prune"]
    kd = (pc["distill"]["w_img"], pc["distill"]["w_det"]) if pc["distill"]["enabled"] else (0.0, 0.0)
    loss = JointTerms(*pc["joint"]["weights"][0], teacher=frozen_copy(teacher) if pc["distill"]["enabled"] else None,
                      kd=kd)
    ft = {**pc["finetune"], "limit": a.limit}
    fp32_val = evaluate_detection(teacher, val, proto)["ap"]
    rows = [{"epoch": 0, "val_ap": evaluate_detection(pipe, val, proto)["ap"], "seconds": 0.0}]
    log.info("%s: val AP %.3f before (FP32 %.3f)", a.variant, rows[0]["val_ap"], fp32_val)
    for e in range(1, a.epochs + 1):
        t0 = time.time()
        run_finetune(pipe, train, loss, ft, ft["variant"], 1, cfg["seed"] + e, log, f"recovery {e}")
        pipe.eval()
        with torch.no_grad():
            ap = evaluate_detection(pipe, val, proto)["ap"]
        rows.append({"epoch": e, "val_ap": ap, "seconds": round(time.time() - t0, 1)})
        log.info("epoch %d: val AP %.3f (%+.1f points vs FP32), %.0f s", e, ap, 100 * (ap - fp32_val), rows[-1]["seconds"])
    out = run / ".bench" / f"prune_recovery_{a.variant}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"variant": a.variant, "split": "val", "fp32_val_ap": fp32_val, "limit": a.limit,
                               "n_train": len(train), "rows": rows}, indent=2) + "\n")
    print(f"{'epoch':>5}  {'val AP':>7}  vs FP32")
    for r in rows:
        print(f"{r['epoch']:>5}  {r['val_ap']:7.3f}  {100 * (r['val_ap'] - fp32_val):+.1f}")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

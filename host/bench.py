"""`invoke bench`: the toolchain's timing figures, printed and saved to volumes/bench.json.

- dataset stage on the config (forced rerun): wall seconds and images/s (target <= 60 s on the demo)
- warm no-op `invoke all` on ``noop_config`` (default: smoke; it is brought up to date
  first, then timed with everything cached and images up to date)       (target <= 10 s)
- warm image rebuild with nothing changed: label check, and a forced compose build over the layer cache
                                                                         (target <= 30 s)
"""
from __future__ import annotations

import json
import time

from shared.manifest import read_manifest
from host import driver
from shared.dag import load_dag
from host.runners import VOLUMES, choose_runner


def main(config: str, runner: str = "auto", noop_config: str = "configs/smoke.yaml") -> dict:
    kind = choose_runner(runner)
    cfg = driver.load(config)
    dag = load_dag()
    stages = list(dag)
    figures: dict[str, float | str] = {"config": config, "runner": kind, "noop_config": noop_config}

    driver.run(["dataset"], config, kind)                  # images built, dataset present
    t0 = time.time()
    driver.run(["dataset"], config, kind, force=["dataset"], build=False)
    figures["dataset_stage_s"] = round(time.time() - t0, 2)
    m = read_manifest(VOLUMES / cfg["run"], "dataset")
    figures["dataset_images"] = m["metrics"].get("images_total") if m else 0
    figures["dataset_images_per_s"] = m["metrics"].get("images_per_s") if m else None

    driver.run(stages, noop_config, kind)                  # everything up to date
    t0 = time.time()
    driver.run(stages, noop_config, kind)
    figures["noop_all_s"] = round(time.time() - t0, 2)

    if kind == "docker":
        images = sorted({s.image for s in dag.values()})
        t0 = time.time()
        driver.build_images(images)
        figures["image_check_s"] = round(time.time() - t0, 2)
        t0 = time.time()
        driver.build_images(images, force=True)
        figures["image_rebuild_cached_s"] = round(time.time() - t0, 2)

    print("\nbenchmark (" + ", ".join(f"{k}={figures[k]}" for k in ("config", "runner")) + ")")
    for k, v in figures.items():
        if k not in ("config", "runner", "noop_config"):
            print(f"  {k:<24} {v}")
    (VOLUMES / "bench.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures

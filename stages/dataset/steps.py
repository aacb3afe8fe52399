"""``run(ctx)``: build the dataset splits, their labels and a preview.

Splits: ``train``, ``test`` (reported only), ``calibration`` and ``val`` (for
selections; see ``stages.dataset.splits``).  Per split ``<out>/<split>/``:
``images/<id>_{0,1,2,0_noisy,1_noisy}.png``, ``labels.txt`` (labelv2, ``_0``
images) and ``index.json`` (every variant and the faces).  Samples are made in
worker processes (render or import, degrade, write PNGs); each is a pure
function of the seed and its (split, index), so the output does not depend on
the number of workers.
"""
from __future__ import annotations

import multiprocessing
import sys
import time
from pathlib import Path

import cv2
from tqdm import tqdm

from shared.config import ConfigError
from shared.manifest import MissingInput, write_json
from stages.dataset import degrade, importers, splits
from shared.labelv2 import BadSample, write_labelv2
from stages.dataset.preview import write_preview
from stages.dataset.synth import render_scene, rng_for

MAX_REASONS = 20
_W: dict = {}  # per-process settings, set by _init


def _init(cfg: dict, out: str, seed: int) -> None:
    cv2.setNumThreads(1)
    _W.update(cfg=cfg, out=Path(out), seed=seed, size=tuple(cfg["size"]))


def make_sample(job: tuple) -> tuple[str, object]:
    """Job -> ("ok", index record) or ("bad", reason). Writes the five PNGs."""
    split, i, sid, src = job
    cfg, (h, w) = _W["cfg"], _W["size"]
    dropped = 0
    try:
        if src is None:
            img, faces = render_scene(rng_for(_W["seed"], split, i, "scene"), h, w, cfg)
        else:
            raw = importers.load_image(src["image"], (src["width"], src["height"]), src["where"])
            img, faces, dropped = importers.letterbox(raw, src["faces"], h, w, cfg["min_face_px"])
    except BadSample as e:
        return "bad", str(e)
    variants, drawn = degrade.degrade(img, cfg["degradation"], rng_for(_W["seed"], split, i, "degrade"))
    rec = {"id": sid, "width": w, "height": h, "images": {}, "faces": faces, "degradation": drawn,
           "faces_dropped_small": dropped}
    for v, im in variants.items():
        rel = f"images/{sid}_{v}.png"
        if not cv2.imwrite(str(_W["out"] / split / rel), im):
            raise OSError(f"cannot write {_W['out'] / split / rel}")
        rec["images"][v] = rel
    if src is not None:
        rec["source"] = src["name"]
    return "ok", rec


def check_config(cfg: dict) -> None:
    for key in ("faces_per_image", "face_size", "distractors"):
        lo, hi = cfg[key]["min"], cfg[key]["max"]
        if lo > hi:
            raise ConfigError(f"dataset.{key}: min {lo} > max {hi}")
    if min(cfg["size"]) < 16:
        raise ConfigError(f"dataset.size: {cfg['size']} is too small (at least 16 x 16)")
    try:
        degrade.check_params(cfg["degradation"])
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if cfg["source"] != "synthetic" and not cfg["root"]:
        raise ConfigError(f"dataset.root: source '{cfg['source']}' needs root: the folder with its labels")


def import_jobs(cfg: dict, seed: int, bad: list[str], log) -> dict[str, list[tuple]]:
    """Check every labelled image, deal the good ones into splits."""
    root = Path(cfg["root"]).expanduser()
    if not root.exists():
        raise MissingInput(f"dataset.root: {root} does not exist (source '{cfg['source']}')")
    good = []
    for raw in importers.find_samples(cfg["source"], root):
        try:
            width, height, faces = importers.check_sample(raw, cfg["box_tolerance_px"])
        except BadSample as e:
            if cfg["on_bad_sample"] == "error":
                raise
            bad.append(str(e))
            continue
        good.append({"image": str(raw.image), "name": raw.name, "where": raw.where,
                     "width": width, "height": height, "faces": faces})
    log.info("%s: %d usable images under %s (%d bad)", cfg["source"], len(good), root, len(bad))
    picked = splits.assign(len(good), splits.sizes(cfg), seed, f"{cfg['source']} images under {root}")
    return {s: [(s, i, f"{s}_{i:05d}", good[g]) for i, g in enumerate(idx)] for s, idx in picked.items()}


def run(ctx) -> dict:
    cfg, out, log = ctx.cfg, Path(ctx.out), ctx.log
    check_config(cfg)
    if not cfg["splits"]["val"]:
        log.warning("dataset.splits.val is 0: no validation split, so stages that select or search "
                    "(PTQ cell, loss weights, pruning budget) have nothing to choose on; the test split is never used for that")
    started = time.time()
    bad: list[str] = []
    if cfg["source"] == "synthetic":
        jobs = {s: [(s, i, f"{s}_{i:05d}", None) for i in range(n)] for s, n in splits.sizes(cfg).items()}
    else:
        jobs = import_jobs(cfg, ctx.seed, bad, log)
    for s in splits.SPLITS:
        (out / s / "images").mkdir(parents=True, exist_ok=True)
    flat = [j for s in splits.SPLITS for j in jobs[s]]
    records = {s: [] for s in splits.SPLITS}
    workers = min(cfg["workers"], len(flat))
    init = (cfg, str(out), ctx.seed)
    bar = dict(total=len(flat), desc="dataset", unit="img", mininterval=1.0)
    if workers <= 1:
        _init(*init)
        results = tqdm(map(make_sample, flat), **bar)
        _collect(results, flat, records, bad, cfg)
    else:
        chunk = max(1, min(16, len(flat) // (workers * 8)))
        with multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn").Pool(workers, _init, init) as pool:
            _collect(tqdm(pool.imap(make_sample, flat, chunksize=chunk), **bar), flat, records, bad, cfg)
    dropped = sum(x.pop("faces_dropped_small") for r in records.values() for x in r)
    for s in splits.SPLITS:
        write_labelv2(out / s / "labels.txt", records[s])
        write_json(out / s / "index.json", records[s])
    show = [r for r in records["test"] or records["train"] if r["faces"]] or records["test"] or records["train"]
    write_preview(out / "preview.png", out / ("test" if records["test"] else "train"), show[:cfg["preview"]])
    secs = time.time() - started
    n = sum(len(r) for r in records.values())
    metrics = {"source": cfg["source"], "size": list(cfg["size"]),
               "images_total": n, "faces_total": sum(len(x["faces"]) for r in records.values() for x in r),
               "bad_samples_skipped": len(bad), "bad_sample_reasons": bad[:MAX_REASONS],
               "faces_dropped_small": dropped,
               "seconds": round(secs, 2), "images_per_s": round(n / max(secs, 1e-9), 1)}
    for s in splits.SPLITS:
        metrics[f"{s}_images"] = len(records[s])
        metrics[f"{s}_faces"] = sum(len(x["faces"]) for x in records[s])
        if len(records[s]) < splits.sizes(cfg)[s]:
            log.warning("%s: %d of %d images (bad samples skipped)", s, len(records[s]), splits.sizes(cfg)[s])
    log.info("%d images, %d faces in %.1f s (%.0f img/s)", n, metrics["faces_total"], secs, metrics["images_per_s"])
    return {"metrics": metrics}


def _collect(results, jobs, records, bad, cfg) -> None:
    for job, (status, val) in zip(jobs, results):
        if status == "ok":
            records[job[0]].append(val)
        elif cfg["on_bad_sample"] == "error":
            raise BadSample(val)
        else:
            bad.append(val)

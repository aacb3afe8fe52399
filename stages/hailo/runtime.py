"""On-device figures with HailoRT (only where a Hailo device and HailoRT are present).

The chain's three HEFs are loaded on one VDevice (ROUND_ROBIN scheduler, set explicitly) and
run two ways on real calibration frames:

* serial: per frame enhancer -> denoiser -> YuNet, one after the other (latency per model and
  per frame, end-to-end FPS);
* parallel: each model loops over its own frames in its own thread and the scheduler
  interleaves them (pipelined throughput: FPS per model and for the chain), with the chip's
  power measured over that run.
"""
from __future__ import annotations

import time

import numpy as np

from stages.hailo import sdk


def _stats(lat_s: list[float]) -> dict:
    a = np.asarray(lat_s) * 1000.0
    return {"mean_ms": float(a.mean()), "p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "fps": float(1000.0 / a.mean()), "n": int(a.size)}


def measure(hefs: dict, calib: dict, feed: dict, frames: int, power: bool, log) -> dict:
    """hefs/calib/feed keyed by role; calib arrays NHWC in each model's input units."""
    roles = [r for r in ("enhancer", "denoiser", "yunet") if r in hefs]
    pick = {r: [calib[r][i % len(calib[r])] for i in range(frames)] for r in roles}
    rt = sdk.Runtime(hefs)
    try:
        for r in roles:                         # warm-up: first inference configures the network
            rt.infer(r, pick[r][0])
        serial = {r: [] for r in roles}
        per_frame = []
        for i in range(frames):
            t_frame = time.perf_counter()
            x = pick[roles[0]][i]
            for k, r in enumerate(roles):
                t0 = time.perf_counter()
                outs = rt.infer(r, x)
                serial[r].append(time.perf_counter() - t0)
                if k + 1 < len(roles) and r != "yunet":
                    nxt = roles[k + 1]
                    y = next(iter(outs.values()))          # restoration nets: one [0,1]-scale image
                    x = y * np.float32(feed[nxt] if nxt != "yunet" else 255.0)
            per_frame.append(time.perf_counter() - t_frame)
        result = {"serial": {"per_model": {r: _stats(serial[r]) for r in roles}, "per_frame": _stats(per_frame)}}
        watts: dict = {}
        if power:
            with rt.power(watts):
                lat, wall = rt.parallel(pick)
        else:
            lat, wall = rt.parallel(pick)
        result["parallel"] = {"per_model": {r: _stats(lat[r]) for r in roles}, "wall_s": wall,
                              "chain_fps": frames / wall}
        if power:
            result["power"] = watts
            if "average_w" in watts:
                watts["mj_per_frame"] = watts["average_w"] * wall / frames * 1000.0
        log.info("HailoRT: serial %.2f ms/frame, parallel %.1f chain FPS%s", result["serial"]["per_frame"]["mean_ms"],
                 result["parallel"]["chain_fps"], f", {watts['average_w']:.2f} W" if "average_w" in watts else "")
        return result
    finally:
        rt.close()

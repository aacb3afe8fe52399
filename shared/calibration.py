"""One calibration set for every backend: AIMET and NNCF (quantize), ESP-DL (esp), the Hailo DFC (hailo).

The run config's top-level ``calibration`` section (shared/schema.yaml) says which images each
backend calibrates on; the three stages read it only through :func:`inputs`, and the section
feeds each of their cache keys (``sections`` in stages/pipeline.yaml), so the backends are
calibrated on the same data and can be compared as equals.

* ``images``: how many calibration-split images (null: the whole split);
* ``source: chain`` (default): each net gets what the FP32 chain hands it, as in deployment -
  the enhancer the ``eval.variant`` images, the denoiser the FP32 enhancer's output, the
  detector the FP32 denoiser's output (x255 by :func:`scaled`); ``source: dataset``: each net
  its own evaluation images (``shared.units.eval_variant``);
* which images: a seed-ordered subset of the split (:func:`indices`; the run seed, or a PTQ
  grid cell's own seed, which is what the grid's seeds vary).

:func:`inputs` returns [0, 1]-scale NCHW float32 arrays keyed by the names asked for (an alias
such as ``yunet`` and ``pipeline``, the chain's raw input, included); :func:`scaled` puts one in
the net's input units.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

import numpy as np

from shared import units
from shared.data import Split, to_float
from shared.errors import ExpectedError

SOURCES = ("chain", "dataset")
Fn = Callable[[np.ndarray], list]


class CalibrationError(ExpectedError, ValueError):
    pass


def indices(n_split: int, images: int | None, seed: int) -> np.ndarray:
    """The calibration images used: the first ``images`` of a ``seed`` permutation of the split."""
    return np.random.default_rng(seed).permutation(n_split)[: (images or n_split)]


def _load(split: Split, idx: np.ndarray, variant: str) -> np.ndarray:
    return to_float(np.stack([split.image(int(i), variant) for i in idx]))


def _run(fn: Fn, x: np.ndarray, batch: int = 8) -> np.ndarray:
    return np.concatenate([np.asarray(fn(x[i:i + batch])[0], np.float32) for i in range(0, len(x), batch)])


def inputs(split: Split, spec: Mapping, variant: str, seed: int, names: Iterable[str],
           upstream: Mapping[str, Fn] | None = None) -> dict[str, np.ndarray]:
    """{name: [0, 1]-scale NCHW float32} for each of ``names`` (enhancer, denoiser, detector or an
    alias, pipeline).  ``spec``: the config's ``calibration`` section; ``variant``: the chain's input
    images (``eval.variant``); ``upstream``: the FP32 nets of this chain, {unit: fn(x) -> [out, ...]},
    for ``source: chain`` (a net absent from the chain passes its input through unchanged)."""
    if spec["source"] not in SOURCES:
        raise CalibrationError(f"calibration.source: {spec['source']!r} (known: {', '.join(SOURCES)})")
    if len(split) == 0:
        raise CalibrationError(f"{split.root}: the calibration split is empty (dataset.splits.calibration)")
    names = list(names)
    idx = indices(len(split), spec["images"], seed)
    if spec["source"] == "dataset":
        by_variant = {v: _load(split, idx, v) for v in {units.eval_variant(n, variant) for n in names}}
        return {n: by_variant[units.eval_variant(n, variant)] for n in names}
    raw = _load(split, idx, variant)
    fed, x = {}, raw
    wanted = {units.unit(n).name for n in names if n != "pipeline"}
    for role in units.ORDER:
        fed[role] = x
        if role in (upstream or {}) and any(units.ORDER.index(w) > units.ORDER.index(role) for w in wanted):
            x = _run(upstream[role], x)
    return {n: raw if n == "pipeline" else fed[units.unit(n).name] for n in names}


def scaled(x01: np.ndarray, name: str) -> np.ndarray:
    """A [0, 1]-scale calibration array in the input units of ``name`` (the detector: 0..255)."""
    return (x01 * np.float32(units.input_range(name))).astype(np.float32)


def describe(spec: Mapping, n_split: int, seed: int) -> dict:
    """What a backend was calibrated on, for its metrics (the same record in every stage)."""
    idx = indices(n_split, spec["images"], seed)
    return {"source": spec["source"], "images": int(len(idx)), "seed": int(seed), "indices": [int(i) for i in idx]}

"""The unit table: the three nets of the chain, described once (like Hailo Model Zoo's per-network YAML).

Every stage reads these facts from here instead of writing them down again:

* ``train_variant``: the degraded image variant a net is trained / fine-tuned / calibrated on
  (enhancer ``_1`` -> clean, denoiser ``_0_noisy`` -> clean, detector the clean ``_0``);
* ``eval_variant``: the variant a net is evaluated on alone (restoration: its training input;
  the detector: the protocol's variant, ``eval.variant``, given as ``None``);
* ``input_range``: the detector takes raw 0..255 pixels (as ``cv2.FaceDetectorYN`` feeds YuNet),
  the restoration nets [0, 1] images: ``PIXEL_SCALE`` is the factor between them in the chain;
* ``metric``: the headline metric (PSNR against the clean image, or AP@0.5);
* ``aliases``: other names of the same net in file names (``yunet`` is the detector).

``chain(enhancer, denoiser, detector)`` composes three ``fn(x) -> [outputs]`` callables into the
system the study evaluates: detector(PIXEL_SCALE x denoiser(enhancer(x))).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

PIXEL_SCALE = 255.0
CLEAN = "0"


@dataclass(frozen=True)
class Unit:
    name: str
    train_variant: str
    eval_variant: str | None      # None: the protocol's eval.variant
    input_range: float
    metric: str                   # "psnr" | "ap"
    aliases: tuple[str, ...] = ()


UNITS: dict[str, Unit] = {
    "enhancer": Unit("enhancer", "1", "1", 1.0, "psnr"),
    "denoiser": Unit("denoiser", "0_noisy", "0_noisy", 1.0, "psnr"),
    "detector": Unit("detector", CLEAN, None, PIXEL_SCALE, "ap", aliases=("yunet",)),
}
ORDER = tuple(UNITS)                                  # the chain's order: enhancer -> denoiser -> detector
RESTORATION = tuple(n for n, u in UNITS.items() if u.metric == "psnr")
_BY_ANY_NAME = {a: u for u in UNITS.values() for a in (u.name, *u.aliases)}


def unit(name: str) -> Unit:
    """The unit of ``name`` (an alias such as ``yunet`` included); KeyError names the known ones."""
    try:
        return _BY_ANY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown net {name!r}: expected one of {', '.join(_BY_ANY_NAME)}") from None


def input_range(name: str) -> float:
    """[0, 1] for the restoration nets and the whole pipeline; 0..255 for the bare detector."""
    return unit(name).input_range if name in _BY_ANY_NAME else 1.0


def train_variant(name: str, default: str | None = None) -> str:
    """The variant a net is trained / fine-tuned / calibrated on; ``default`` for a name that is not
    one of the three nets (the whole pipeline: the protocol's degraded variant)."""
    if name not in _BY_ANY_NAME and default is not None:
        return default
    return unit(name).train_variant


def eval_variant(name: str, protocol_variant: str) -> str:
    """Which degraded images a net (or the pipeline, any other name) is evaluated on."""
    u = _BY_ANY_NAME.get(name)
    return protocol_variant if u is None or u.eval_variant is None else u.eval_variant


Fn = Callable[[np.ndarray], Sequence[np.ndarray]]


def chain(enhancer: Fn, denoiser: Fn, detector: Fn, pixel_scale: float = PIXEL_SCALE) -> tuple[Callable, Callable]:
    """(detect, restore): ``restore(x)`` = denoiser(enhancer(x)) on [0, 1] images; ``detect(x)`` = the
    detector's outputs on ``pixel_scale`` x that (the system the study evaluates; no clamp, as
    shared.models.Pipeline)."""
    def restore(x):
        return np.asarray(denoiser(np.asarray(enhancer(x)[0], np.float32))[0], np.float32)

    def detect(x):
        return feed_detector(detector, restore(x), pixel_scale)
    return detect, restore


def feed_detector(detector: Fn, restored: np.ndarray, pixel_scale: float = PIXEL_SCALE):
    """The chain's last hop: the detector's outputs on a restored [0, 1] image (for a caller that keeps
    the restored image too, as the report's chain evaluation does)."""
    return detector(restored * np.float32(pixel_scale))

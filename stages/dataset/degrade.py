"""Low-light and sensor-noise variants of a clean 8-bit image.

Physically motivated, in linear light:

1. ``lin = (img / 255) ** gamma`` (inverse sRGB, gamma ~2.2);
2. exposure: ``lin * e`` with ``e`` drawn from ``exposure_moderate`` for
   ``_1`` and from ``exposure_severe`` for ``_2``;
3. noise (``_0_noisy`` from the clean exposure, ``_1_noisy`` from the ``_1``
   exposure, so ``(_1_noisy, _1)`` and ``(_0_noisy, _0)`` are denoising pairs):
   Poisson shot noise with ``photons_full_well`` photons at full scale (drawn
   log-uniformly per image) plus Gaussian read noise ``read_noise`` (fraction
   of full scale), clipped;
4. back to sRGB with ``** (1 / gamma)`` and rounded to 8 bits.

All random draws come from the generator passed in, so a variant is a pure
function of (image, params, seed).
"""
from __future__ import annotations

import numpy as np

VARIANTS = ("0", "1", "2", "0_noisy", "1_noisy")


def _lut_to_linear(gamma: float) -> np.ndarray:
    return ((np.arange(256, dtype=np.float32) / 255.0) ** gamma).astype(np.float32)


def to_srgb8(lin: np.ndarray, gamma: float) -> np.ndarray:
    """Linear [0, 1] float -> 8-bit with the power-law curve (clips)."""
    out = np.clip(lin, 0.0, 1.0) ** (1.0 / gamma)
    return (out * 255.0 + 0.5).astype(np.uint8)


EXACT_BELOW = 12.0  # photons; above this the Poisson law is drawn as its Gaussian limit (much faster)


def add_sensor_noise(lin: np.ndarray, rng: np.random.Generator, photons: float, read: float) -> np.ndarray:
    """Poisson-Gaussian noise on a linear image with ``photons`` at full scale.

    Shot noise is exact Poisson for pixels under ``EXACT_BELOW`` expected
    photons and N(lam, lam) above (indistinguishable at 8 bits, 5x faster)."""
    lam = np.clip(lin, 0.0, 1.0).astype(np.float32) * np.float32(photons)
    read_e = np.float32(read * photons)  # read noise in photo-electrons
    z = rng.standard_normal(lam.shape, dtype=np.float32)
    noisy = lam + np.sqrt(lam + read_e * read_e) * z  # shot + read, Gaussian limit
    dark = lam < EXACT_BELOW
    noisy[dark] = rng.poisson(lam[dark]) + read_e * z[dark]  # z[dark] is otherwise unused
    return noisy / np.float32(photons)


def degrade(img: np.ndarray, params: dict, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict]:
    """Return ({variant: uint8 image}, {drawn parameters}) for a clean uint8 image."""
    gamma = float(params["gamma"])
    lin = _lut_to_linear(gamma)[img]
    e1 = float(rng.uniform(*params["exposure_moderate"]))
    e2 = float(rng.uniform(*params["exposure_severe"]))
    photons = float(np.exp(rng.uniform(*np.log(params["photons_full_well"]))))
    read = float(rng.uniform(*params["read_noise"]))
    lin1 = lin * np.float32(e1)
    out = {
        "0": img.copy(),
        "1": to_srgb8(lin1, gamma),
        "2": to_srgb8(lin * np.float32(e2), gamma),
        "0_noisy": to_srgb8(add_sensor_noise(lin, rng, photons, read), gamma),
        "1_noisy": to_srgb8(add_sensor_noise(lin1, rng, photons, read), gamma),
    }
    drawn = {"exposure_1": round(e1, 4), "exposure_2": round(e2, 4),
             "photons_full_well": round(photons, 1), "read_noise": round(read, 5)}
    return out, drawn


def check_params(params: dict) -> None:
    """Raise ValueError for ranges that are empty, reversed or out of (0, 1]."""
    for key in ("exposure_moderate", "exposure_severe", "photons_full_well", "read_noise"):
        lo, hi = params[key]
        if lo > hi:
            raise ValueError(f"dataset.degradation.{key}: range [{lo}, {hi}] is reversed")
    for key in ("exposure_moderate", "exposure_severe"):
        lo, hi = params[key]
        if lo <= 0 or hi > 1:
            raise ValueError(f"dataset.degradation.{key}: exposure factors must lie in (0, 1], got [{lo}, {hi}]")
    if params["photons_full_well"][0] <= 0:
        raise ValueError("dataset.degradation.photons_full_well: must be > 0")
    if params["read_noise"][0] < 0:
        raise ValueError("dataset.degradation.read_noise: must be >= 0")

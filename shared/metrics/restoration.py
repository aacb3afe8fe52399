"""Image-restoration metrics in numpy: PSNR and SSIM.

* ``psnr(pred, target, data_range=1.0)`` = 10 log10(data_range^2 / MSE) over all elements
  (inf when the images are equal).  Use data_range=255 for 8-bit images.
* ``ssim(pred, target, data_range=1.0, channel_axis=-1)`` reproduces
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=data_range, channel_axis=...)``: Gaussian window
  (sigma 1.5, truncated at 3.5 sigma, i.e. 11 taps, ``scipy.ndimage`` 'reflect' borders),
  K1 = 0.01, K2 = 0.03, mean of the SSIM map after cropping 5 pixels at each border,
  averaged over channels.  Pure numpy (float64); no skimage/scipy needed at run time.
* ``batch_psnr`` / ``batch_ssim``: per-image mean over an NCHW (or NHWC) batch.

Inputs can be numpy arrays or torch tensors (detached and moved to CPU).
"""
from __future__ import annotations

import numpy as np

K1, K2, SIGMA, TRUNCATE = 0.01, 0.03, 1.5, 3.5


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def mse(pred, target) -> float:
    p, t = _np(pred), _np(target)
    if p.shape != t.shape:
        raise ValueError(f"shape mismatch {p.shape} vs {t.shape}")
    return float(np.mean((p - t) ** 2))


def psnr(pred, target, data_range: float = 1.0) -> float:
    """PSNR in dB over all elements of the two arrays."""
    err = mse(pred, target)
    if err == 0:
        return float("inf")
    return float(10.0 * np.log10(data_range ** 2 / err))


def _gauss_kernel(sigma: float = SIGMA, truncate: float = TRUNCATE) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _filter1d(img: np.ndarray, k: np.ndarray, axis: int) -> np.ndarray:
    r = len(k) // 2
    pad = [(0, 0)] * img.ndim
    pad[axis] = (r, r)
    p = np.pad(img, pad, mode="symmetric")  # == scipy.ndimage mode 'reflect'
    n = img.shape[axis]
    out = np.zeros_like(img)
    for i, w in enumerate(k):
        out += w * np.take(p, np.arange(i, i + n), axis=axis)
    return out


def _gauss_filter(img: np.ndarray) -> np.ndarray:
    k = _gauss_kernel()
    return _filter1d(_filter1d(img, k, 0), k, 1)


def ssim_2d(x, y, data_range: float = 1.0) -> float:
    """Gaussian-window SSIM of two single-channel 2-D images."""
    x, y = _np(x), _np(y)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"ssim_2d wants two equal 2-D arrays, got {x.shape}, {y.shape}")
    win = 2 * int(TRUNCATE * SIGMA + 0.5) + 1
    if min(x.shape) < win:
        raise ValueError(f"images must be at least {win}x{win} for SSIM, got {x.shape}")
    ux, uy = _gauss_filter(x), _gauss_filter(y)
    uxx, uyy, uxy = _gauss_filter(x * x), _gauss_filter(y * y), _gauss_filter(x * y)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean())


def ssim(pred, target, data_range: float = 1.0, channel_axis: int | None = -1) -> float:
    """SSIM of two images; multichannel images are averaged over ``channel_axis``
    (-1 for HWC, 0 for CHW, None for a 2-D grey image)."""
    p, t = _np(pred), _np(target)
    if p.shape != t.shape:
        raise ValueError(f"shape mismatch {p.shape} vs {t.shape}")
    if channel_axis is None:
        return ssim_2d(p, t, data_range)
    p, t = np.moveaxis(p, channel_axis, 0), np.moveaxis(t, channel_axis, 0)
    return float(np.mean([ssim_2d(a, b, data_range) for a, b in zip(p, t)]))


def batch_psnr(pred, target, data_range: float = 1.0) -> float:
    """Mean over the batch (axis 0) of the per-image PSNR."""
    p, t = _np(pred), _np(target)
    return float(np.mean([psnr(a, b, data_range) for a, b in zip(p, t)]))


def batch_ssim(pred, target, data_range: float = 1.0, channel_axis: int = 1) -> float:
    """Mean over the batch of the per-image SSIM; channel_axis is that of the batch
    array (1 for NCHW, -1 for NHWC)."""
    p, t = _np(pred), _np(target)
    ax = channel_axis - 1 if channel_axis > 0 else channel_axis
    return float(np.mean([ssim(a, b, data_range, ax) for a, b in zip(p, t)]))

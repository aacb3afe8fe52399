"""The chained multi-model system: low-light enhancer -> denoiser -> YuNet, as one nn.Module.

``Pipeline(enhancer, denoiser, detector)(x)`` with x an NCHW float image in [0, 1]:

    e = enhancer(x)          # [0, 1] scale, restoration net with global residual
    d = denoiser(e)          # [0, 1] scale
    outs = detector(255 * d) # YuNet takes raw 0..255 pixel values, like cv2.FaceDetectorYN

The x255 lives inside the pipeline because FaceDetectorYN feeds the detector the raw
pixels of the (padded) image with no mean/std normalisation (``blobFromImage`` with
scale 1) and YuNet was trained that way (``img_norm_cfg`` mean 0, std 1).  The channel
order is passed through unchanged: the dataset is expected to deliver BGR (cv2.imread)
images, which is what the detector sees in FaceDetectorYN; ``swap_rb=True`` reverses the
channels before the detector for RGB data.  ``clamp=True`` clips the restored image to
[0, 1] before the detector (off by default, so that gradients reach every pixel).

``forward(x, return_intermediate=True)`` returns ``(outs, enhanced, denoised)`` for the
joint loss; ``raw=True`` uses ``detector.forward_train`` (cls/obj logits).
``build_models(cfg)`` builds the three nets from a small config dict.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn

from shared.units import PIXEL_SCALE

from .restoration import RestorationNet
from .yunet import YUNET_N_STAGES, YuNet

DEFAULT_CFG: dict[str, Any] = {
    "input_size": 256,  # square side or [height, width]; multiples of 32
    "enhancer": {"channels": [8, 32, 64, 64], "enc_blocks": [1, 1, 2, 2], "kernel": 5},
    "denoiser": {"channels": [8, 32, 64, 64], "enc_blocks": [1, 1, 2, 2], "kernel": 5},
    "detector": {"stage_channels": [list(c) for c in YUNET_N_STAGES], "feat_channels": 64},
    "swap_rb": False,
    "clamp": False,
}


class Pipeline(nn.Module):
    """detector(255 * denoiser(enhancer(x))); see the module docstring."""

    def __init__(self, enhancer: nn.Module, denoiser: nn.Module, detector: YuNet,
                 swap_rb: bool = False, clamp: bool = False, pixel_scale: float = PIXEL_SCALE):
        super().__init__()
        self.enhancer = enhancer
        self.denoiser = denoiser
        self.detector = detector
        self.swap_rb = swap_rb
        self.clamp = clamp
        self.pixel_scale = float(pixel_scale)
        self.input_size = (256, 256)  # (height, width); set by build_models
        self.output_names = tuple(detector.output_names)

    def restore(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(enhanced, denoised), both on the [0, 1] scale."""
        enhanced = self.enhancer(x)
        return enhanced, self.denoiser(enhanced)

    def to_detector_input(self, img: torch.Tensor) -> torch.Tensor:
        """[0, 1] image -> what YuNet / FaceDetectorYN expects (0..255, same channel order)."""
        if self.clamp:
            img = img.clamp(0.0, 1.0)
        if self.swap_rb:
            img = torch.cat([img[:, 2:3], img[:, 1:2], img[:, 0:1]], 1)
        return img * self.pixel_scale

    def forward(self, x: torch.Tensor, return_intermediate: bool = False, raw: bool = False):
        enhanced, denoised = self.restore(x)
        det_in = self.to_detector_input(denoised)
        outs = self.detector.forward_train(det_in) if raw else self.detector(det_in)
        if return_intermediate:
            return outs, enhanced, denoised
        return outs


def _merge(base: Mapping, over: Mapping | None) -> dict:
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in base.items()}
    for k, v in (over or {}).items():
        if k not in base:
            raise KeyError(f"build_models: unknown key {k!r} (known: {sorted(base)})")
        out[k] = _merge(base[k], v) if isinstance(base[k], Mapping) and v is not None else v
    return out


def build_models(cfg: Mapping | None = None) -> Pipeline:
    """Build ``Pipeline`` (with ``.enhancer``, ``.denoiser``, ``.detector``) from a dict.

    Keys (all optional, defaults in ``DEFAULT_CFG``): ``input_size`` (int or [h, w]),
    ``enhancer``/``denoiser`` (``RestorationNet`` kwargs: channels, enc_blocks, kernel),
    ``detector`` (``YuNet`` kwargs: stage_channels, feat_channels, ...), ``swap_rb``, ``clamp``.
    """
    cfg = _merge(DEFAULT_CFG, cfg)
    size = cfg["input_size"]
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h % 32 or w % 32:
        raise ValueError(f"input_size must be multiples of 32 (YuNet strides), got {(h, w)}")
    det_kw = dict(cfg["detector"])
    if "stage_channels" in det_kw:
        det_kw["stage_channels"] = [tuple(c) for c in det_kw["stage_channels"]]
    pipe = Pipeline(RestorationNet(**cfg["enhancer"]), RestorationNet(**cfg["denoiser"]),
                    YuNet(**det_kw), swap_rb=bool(cfg["swap_rb"]), clamp=bool(cfg["clamp"]))
    pipe.input_size = (h, w)
    return pipe

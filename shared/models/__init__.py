"""Model definitions shared by every stage (plain PyTorch, no mmdet/mmcv).

RestorationNet (denoiser / low-light enhancer), YuNet (yunet_n face detector), the chained
Pipeline and build_models; numpy decode of YuNet outputs; ONNX export helpers.

The torch-based names are imported on first use, so light images without torch can
still use ``shared.models.yunet_decode`` (numpy only) and ``OUTPUT_NAMES``.
"""
from .yunet_decode import STRIDES, decode, nms_boxes

OUTPUT_NAMES = tuple(f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in STRIDES)
INPUT_NAME = "input"
_LAZY = {"DEFAULT_CFG": "pipeline", "Pipeline": "pipeline", "build_models": "pipeline",
         "RestorationNet": "restoration", "YuNet": "yunet"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(name)


__all__ = ["RestorationNet", "YuNet", "Pipeline", "build_models", "DEFAULT_CFG", "decode",
           "nms_boxes", "OUTPUT_NAMES", "INPUT_NAME", "STRIDES"]

"""Model definitions shared by every stage (plain PyTorch, no mmdet/mmcv).

RestorationNet (denoiser / low-light enhancer), YuNet (yunet_n face detector), the chained
Pipeline and build_models; numpy decode of YuNet outputs; ONNX export helpers.
"""
from .pipeline import DEFAULT_CFG, Pipeline, build_models
from .restoration import RestorationNet
from .yunet import INPUT_NAME, OUTPUT_NAMES, STRIDES, YuNet
from .yunet_decode import decode, nms_boxes

__all__ = ["RestorationNet", "YuNet", "Pipeline", "build_models", "DEFAULT_CFG", "decode",
           "nms_boxes", "OUTPUT_NAMES", "INPUT_NAME", "STRIDES"]

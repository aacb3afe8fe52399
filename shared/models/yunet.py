"""YuNet-n face detector in plain PyTorch (no mmdet/mmcv), as in ShiqiYu/libfacedetection.train.

Config reproduced: ``configs/yunet_n.py`` -- backbone ``YuNetBackbone`` with
``stage_channels=[[3,16,16],[16,64],[64,64],[64,64],[64,64],[64,64]]``,
``downsample_idx=[0,2,3,4]`` (2x2 max-pool after those stages), ``out_idx=[3,4,5]``
(strides 8/16/32); neck ``TFPN`` (one ConvDPUnit per level, top-down nearest 2x
upsample + add); head ``YuNet_Head`` with ``shared_stacked_convs=1``, ``stacked_convs=0``,
``feat_channels=64``, per level ConvDPUnit(no BN/ReLU) predictors for cls (1), obj (1),
bbox (4) and kps (10).  75,856 parameters (BN affine included, running stats excluded).

Sub-module names follow the original (``backbone.model0..5``, ``neck.lateral_convs``,
``bbox_head.multi_level_{share_convs,cls,obj,bbox,kps}``) so a libfacedetection.train
checkpoint's ``state_dict`` loads with ``load_state_dict`` as is.

Input: NCHW float, raw 0..255 pixel values, channel order as given to cv2.FaceDetectorYN
(BGR when read with cv2.imread), no normalisation (``img_norm_cfg`` mean 0, std 1).
H and W must be multiples of 32.

``forward(x)`` returns the 12 outputs of the exported/ONNX model in OpenCV FaceDetectorYN
order ``OUTPUT_NAMES`` (cls_8..32, obj_8..32, bbox_8..32, kps_8..32), each [N, H_s*W_s, C]
(row-major over the grid, C = 1, 1, 4, 10) with cls/obj sigmoid-ed, exactly what the
original head returns under ``torch.onnx.is_in_onnx_export()``.  ``forward_train(x)``
returns the same 12 tensors in the same order/layout but with cls/obj as raw logits
(for BCE-with-logits losses).  Decoding: see ``yunet_decode.py``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

STRIDES = (8, 16, 32)
OUTPUT_NAMES = tuple(f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in STRIDES)
INPUT_NAME = "input"  # FaceDetectorYN sets the input shape of the layer named "input"
YUNET_N_STAGES = ((3, 16, 16), (16, 64), (64, 64), (64, 64), (64, 64), (64, 64))


class ConvDPUnit(nn.Module):
    """1x1 conv (bias) -> depthwise 3x3 conv (bias) [-> BN -> ReLU]."""

    def __init__(self, cin: int, cout: int, with_bn_relu: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 1, 1, 0, bias=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=True, groups=cout)
        self.with_bn_relu = with_bn_relu
        if with_bn_relu:
            self.bn = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(x))
        if self.with_bn_relu:
            x = self.relu(self.bn(x))
        return x


class ConvHead(nn.Module):
    """Stem: 3x3 stride-2 conv -> BN -> ReLU -> ConvDPUnit (original ``Conv_head``)."""

    def __init__(self, cin: int, mid: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 3, 2, 1, bias=True)
        self.conv2 = ConvDPUnit(mid, cout, True)
        self.bn1 = nn.BatchNorm2d(mid)
        self.relu1 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu1(self.bn1(self.conv1(x))))


class Conv4LayerBlock(nn.Module):
    """Two ConvDPUnits: cin -> cin -> cout (original ``Conv4layerBlock``)."""

    def __init__(self, cin: int, cout: int, with_bn_relu: bool = True):
        super().__init__()
        self.conv1 = ConvDPUnit(cin, cin, True)
        self.conv2 = ConvDPUnit(cin, cout, with_bn_relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class YuNetBackbone(nn.Module):
    def __init__(self, stage_channels=YUNET_N_STAGES, downsample_idx=(0, 2, 3, 4),
                 out_idx=(3, 4, 5)):
        super().__init__()
        self.layer_num = len(stage_channels)
        self.downsample_idx = tuple(downsample_idx)
        self.out_idx = tuple(out_idx)
        self.model0 = ConvHead(*stage_channels[0])
        for i in range(1, self.layer_num):
            self.add_module(f"model{i}", Conv4LayerBlock(*stage_channels[i]))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i in range(self.layer_num):
            x = getattr(self, f"model{i}")(x)
            if i in self.out_idx:
                out.append(x)
            if i in self.downsample_idx:
                x = F.max_pool2d(x, 2)
        return out


class TFPN(nn.Module):
    """Tiny FPN: top-down, lateral ConvDPUnit per level, nearest 2x upsample + add."""

    def __init__(self, in_channels: Sequence[int] = (64, 64, 64)):
        super().__init__()
        self.lateral_convs = nn.ModuleList(ConvDPUnit(c, c, True) for c in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        feats = list(feats)
        for i in range(len(feats) - 1, 0, -1):
            feats[i] = self.lateral_convs[i](feats[i])
            feats[i - 1] = feats[i - 1] + F.interpolate(feats[i], scale_factor=2.0, mode="nearest")
        feats[0] = self.lateral_convs[0](feats[0])
        return feats


class YuNetHead(nn.Module):
    """Anchor-free head (one prior per cell): shared ConvDPUnit, then cls/obj/bbox/kps units."""

    def __init__(self, in_channels: int = 64, feat_channels: int = 64, num_levels: int = 3,
                 shared_stacked_convs: int = 1, num_kps: int = 5):
        super().__init__()
        self.num_kps = num_kps
        self.multi_level_share_convs = nn.ModuleList(
            nn.Sequential(*[ConvDPUnit(in_channels if i == 0 else feat_channels, feat_channels)
                            for i in range(shared_stacked_convs)])
            for _ in range(num_levels))
        chn = feat_channels if shared_stacked_convs > 0 else in_channels
        self.multi_level_cls = nn.ModuleList(ConvDPUnit(chn, 1, False) for _ in range(num_levels))
        self.multi_level_bbox = nn.ModuleList(ConvDPUnit(chn, 4, False) for _ in range(num_levels))
        self.multi_level_obj = nn.ModuleList(ConvDPUnit(chn, 1, False) for _ in range(num_levels))
        self.multi_level_kps = nn.ModuleList(
            ConvDPUnit(chn, 2 * num_kps, False) for _ in range(num_levels))

    def forward(self, feats: list[torch.Tensor]):
        """Raw NCHW maps: (cls, obj, bbox, kps), each a list over levels."""
        feats = [conv(f) for f, conv in zip(feats, self.multi_level_share_convs)]
        cls = [m(f) for f, m in zip(feats, self.multi_level_cls)]
        obj = [m(f) for f, m in zip(feats, self.multi_level_obj)]
        bbox = [m(f) for f, m in zip(feats, self.multi_level_bbox)]
        kps = [m(f) for f, m in zip(feats, self.multi_level_kps)]
        return cls, obj, bbox, kps


def _flat(t: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, H*W, C] (cell index = row * W + col, as OpenCV reads it)."""
    n, c = t.shape[0], t.shape[1]
    return t.permute(0, 2, 3, 1).reshape(n, -1, c)


class YuNet(nn.Module):
    """YuNet detector; defaults give yunet_n (75,856 parameters)."""

    def __init__(self, stage_channels=YUNET_N_STAGES, downsample_idx=(0, 2, 3, 4),
                 out_idx=(3, 4, 5), feat_channels: int = 64, shared_stacked_convs: int = 1,
                 num_kps: int = 5):
        super().__init__()
        self.backbone = YuNetBackbone(stage_channels, downsample_idx, out_idx)
        outs = [stage_channels[i][-1] for i in out_idx]
        if len(set(outs)) != 1:
            raise ValueError(f"TFPN adds levels, so the output stages need one width, got {outs}")
        self.neck = TFPN(outs)
        self.bbox_head = YuNetHead(outs[0], feat_channels, len(out_idx), shared_stacked_convs,
                                   num_kps)
        self.strides = STRIDES
        self.output_names = OUTPUT_NAMES
        self.init_weights()

    def init_weights(self) -> None:
        """As the original: xavier-normal conv weights, conv bias 0.02, BN (1, 0)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _check(self, x: torch.Tensor) -> None:
        h, w = x.shape[-2:]
        assert x.dim() == 4 and x.shape[1] == 3, f"YuNet wants [N, 3, H, W], got {tuple(x.shape)}"
        assert h % 32 == 0 and w % 32 == 0, f"YuNet needs H, W multiples of 32, got {(h, w)}"

    def head_maps(self, x: torch.Tensor):
        """Raw per-level NCHW maps (cls, obj, bbox, kps) as the original head returns them."""
        self._check(x)
        return self.bbox_head(self.neck(self.backbone(x)))

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The 12 outputs in ``OUTPUT_NAMES`` order/layout, cls and obj as logits."""
        return tuple(_flat(t) for group in self.head_maps(x) for t in group)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The 12 outputs as FaceDetectorYN reads them: cls and obj through a sigmoid."""
        cls, obj, bbox, kps = self.head_maps(x)
        return (tuple(_flat(t).sigmoid() for t in cls) + tuple(_flat(t).sigmoid() for t in obj)
                + tuple(_flat(t) for t in bbox) + tuple(_flat(t) for t in kps))

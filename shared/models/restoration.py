"""PMRID-style lightweight restoration net, used as the denoiser and as the low-light enhancer.

Shape of the net (after megvii-research/PMRID, "Practical Deep Raw Image Denoising on
Mobile Devices", reduced to RGB and to a few tens of thousands of parameters)::

    x (N,3,H,W) in [0,1] -> stem conv 3x3 + ReLU -> c0 (1/1)    = skip0
      -> EncoderStage -> c1 (1/2)                                = skip1
      -> EncoderStage -> c2 (1/4)                                = skip2
      -> EncoderStage -> c3 (1/8)                                = skip3
      -> EncoderStage -> c3 (1/16) -> bottleneck sep conv c3 -> c1 + ReLU
      -> 4 DecoderStages, 1/16 -> 1/8 -> 1/4 -> 1/2 -> 1/1, widths c1, c1/2, c1/2, c0
         (narrower than the encoder, as in PMRID); each: residual sep block,
         ConvTranspose 2x2 stride 2, + ReLU(sep conv 3x3(skip_k))
      -> output block: residual sep block + conv 3x3 -> 3 channels = predicted residual r
    y = x + r        (global residual; no clamp unless ``clamp=True``)

Encoder blocks (PMRID): relu(sep(k, c -> c/4, stride) -> relu -> sep(k, c/4 -> c) + proj),
with sep = depthwise kxk (no bias) + pointwise 1x1 (bias) and proj a strided sep 3x3.

``channels=(c0, c1, c2, c3)`` sets the widths; the deepest (1/16) level reuses c3.
``RestorationNet(channels=(8, 32, 64, 64))`` is the study's reduced variant (the
exact parameter count, asserted in the tests, is 59,059 with the defaults
``enc_blocks=(1, 1, 2, 2)``, ``kernel=5``; the study quotes ~61k).

Depth pruning (``drop_blocks``) replaces whole residual blocks by the identity (:class:`Skipped`):
fewer layers at a resolution, where channel pruning only narrows them.

Every op is Conv (incl. depthwise), ConvTranspose (2x2, stride 2), Add or Relu, so
the ONNX graph (opset 13-17) stays inside the Hailo-8 / ESP-DL supported op set.
H and W must be divisible by 16 (four stride-2 stages).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

DIVISOR = 16


class SepConv(nn.Sequential):
    """Depthwise kxk conv (no bias) + pointwise 1x1 conv (bias), optional ReLU (PMRID Conv2D)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, relu: bool = False):
        layers = [nn.Conv2d(cin, cin, k, stride, k // 2, groups=cin, bias=False),
                  nn.Conv2d(cin, cout, 1, 1, 0, bias=True)]
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class EncoderBlock(nn.Module):
    """PMRID encoder block: relu(sep(k, -> out/4) -> relu -> sep(k, -> out) + projection)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, k: int = 3):
        super().__init__()
        mid = max(cout // 4, 4)
        self.conv1 = SepConv(cin, mid, k, stride, relu=True)
        self.conv2 = SepConv(mid, cout, k, 1, relu=False)
        self.proj = (nn.Identity() if stride == 1 and cin == cout
                     else SepConv(cin, cout, 3, stride, relu=False))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.proj(x))


class EncoderStage(nn.Sequential):
    """First block downsamples by 2 (strided depthwise conv), the others keep the size."""

    def __init__(self, cin: int, cout: int, n_blocks: int = 1, k: int = 3):
        blocks = [EncoderBlock(cin, cout, 2, k)]
        blocks += [EncoderBlock(cout, cout, 1, k) for _ in range(n_blocks - 1)]
        super().__init__(*blocks)


class DecoderBlock(nn.Module):
    """Residual sep-conv block: x + sep(relu(sep(x)))."""

    def __init__(self, c: int, k: int = 3):
        super().__init__()
        self.conv1 = SepConv(c, c, k, relu=True)
        self.conv2 = SepConv(c, c, k, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class DecoderStage(nn.Module):
    """Decoder block, 2x upsample by ConvTranspose2d(2, stride 2), add the projected skip."""

    def __init__(self, cin: int, cskip: int, cout: int, k: int = 3):
        super().__init__()
        self.decode = DecoderBlock(cin, k)
        self.up = nn.ConvTranspose2d(cin, cout, 2, 2)
        self.skip = SepConv(cskip, cout, 3, relu=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.up(self.decode(x)) + self.skip(skip)


class RestorationNet(nn.Module):
    """PMRID-style encoder-decoder with global residual; NCHW float in [0,1], 3 channels.

    Args:
        channels: widths (stem, 1/2, 1/4, 1/8); the 1/16 level reuses the last one.
        enc_blocks: EncoderBlocks per encoder stage (1/2, 1/4, 1/8, 1/16).
        kernel: depthwise kernel size of the encoder/decoder blocks (5 as in PMRID).
        clamp: clamp the output to [0, 1] (adds a Clip node; off by default so the joint
            loss keeps gradients everywhere).
    """

    def __init__(self, channels: Sequence[int] = (8, 32, 64, 64),
                 enc_blocks: Sequence[int] = (1, 1, 2, 2), kernel: int = 5,
                 in_channels: int = 3, clamp: bool = False):
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"channels must have 4 widths (stem, 1/2, 1/4, 1/8), got {channels}")
        c0, c1, c2, c3 = (int(c) for c in channels)
        self.channels = (c0, c1, c2, c3)
        self.clamp = clamp
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c0, 3, 1, 1), nn.ReLU())
        widths = [c0, c1, c2, c3, c3]
        self.encoders = nn.ModuleList(
            EncoderStage(widths[i], widths[i + 1], enc_blocks[i], kernel) for i in range(4))
        # the decoder is narrower than the encoder, as in PMRID (enc 16/64/128/256/512,
        # bottleneck 64, decoder 64/32/32/16): bottleneck c1, decoder c1, c1/2, c1/2, c0
        self.bottleneck = SepConv(c3, c1, 3, relu=True)
        dec_out = [c1, max(c1 // 2, c0), max(c1 // 2, c0), c0]
        dec_in = [c1] + dec_out[:-1]
        skips = [c3, c2, c1, c0]
        self.decoders = nn.ModuleList(
            DecoderStage(dec_in[i], skips[i], dec_out[i], kernel) for i in range(4))
        self.head = nn.Sequential(DecoderBlock(c0, kernel), nn.Conv2d(c0, in_channels, 3, 1, 1))
        # the last conv starts at zero: an untrained net is the identity (y = x), which keeps
        # the chained pipeline usable from step 0 of training
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        assert h % DIVISOR == 0 and w % DIVISOR == 0, (
            f"RestorationNet needs H and W divisible by {DIVISOR}, got {tuple(x.shape)}")
        feats = [self.stem(x)]
        for enc in self.encoders:
            feats.append(enc(feats[-1]))
        y = self.bottleneck(feats.pop())
        for dec in self.decoders:
            y = dec(y, feats.pop())
        out = x + self.head(y)
        return out.clamp(0.0, 1.0) if self.clamp else out

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class Skipped(nn.Identity):
    """A residual block removed by depth pruning (:func:`drop_blocks`): its output is its input."""


def residual_blocks(net: nn.Module) -> list[str]:
    """The blocks depth pruning may remove, by module name, in forward order: every DecoderBlock
    (``x + branch(x)``) and every EncoderBlock whose projection is the identity
    (``relu(x + branch(x))`` with ``x >= 0``, the previous block's ReLU output). Removing one leaves
    ``x``: the shapes, and so every other layer, stay as they were."""
    return [n for n, m in net.named_modules()
            if isinstance(m, DecoderBlock) or (isinstance(m, EncoderBlock) and isinstance(m.proj, nn.Identity))]


def drop_blocks(net: nn.Module, names: Sequence[str]) -> nn.Module:
    """Replace the named residual blocks of ``net`` by :class:`Skipped`, in place; returns ``net``.
    Raises ValueError naming a block that is not one of :func:`residual_blocks`."""
    allowed = set(residual_blocks(net))
    for name in names:
        if name not in allowed:
            raise ValueError(f"{name!r} is not a removable residual block (those: {', '.join(sorted(allowed)) or 'none'})")
        parent, _, leaf = name.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, leaf, Skipped())
    return net


def dropped_blocks(net: nn.Module) -> list[str]:
    """Names of the blocks :func:`drop_blocks` removed (what a bundle records to rebuild the net)."""
    return [n for n, m in net.named_modules() if isinstance(m, Skipped)]
